<?php

/**
 * A minimal Chrome DevTools Protocol client over a WebSocket, in plain PHP (sockets only),
 * for the browser tests in this directory. Not part of the SDK.
 *
 *     $cdp = Cdp::connect('ws://127.0.0.1:9222/devtools/page/ID');
 *     $cdp->call('Page.enable');
 *     $cdp->call('Page.navigate', ['url' => 'http://127.0.0.1:8080/']);
 *     $cdp->waitEvent('Page.loadEventFired', 10);
 */

declare(strict_types=1);

final class Cdp
{
    private int $nextId = 0;

    /** @var list<array<string, mixed>> events received while waiting for something else */
    private array $events = [];

    /** @param resource $socket */
    private function __construct(private $socket)
    {
    }

    /** Open the WebSocket (RFC 6455 client handshake). */
    public static function connect(string $url, float $timeout = 10.0): self
    {
        $u = parse_url($url);
        if (($u['scheme'] ?? '') !== 'ws' || !isset($u['host'], $u['port'])) {
            throw new RuntimeException("cdp: unsupported WebSocket URL $url");
        }
        $socket = @stream_socket_client("tcp://{$u['host']}:{$u['port']}", $errno, $errstr, $timeout);
        if ($socket === false) {
            throw new RuntimeException("cdp: cannot connect to $url: $errstr");
        }
        $key = base64_encode(random_bytes(16));
        fwrite($socket, "GET {$u['path']} HTTP/1.1\r\nHost: {$u['host']}:{$u['port']}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n");
        $cdp = new self($socket);
        $head = '';
        $deadline = microtime(true) + $timeout;
        while (!str_contains($head, "\r\n\r\n")) {
            $head .= $cdp->read(1, $deadline);
        }
        if (!preg_match('#^HTTP/1\.1 101 #', $head)) {
            throw new RuntimeException('cdp: WebSocket handshake refused: ' . strtok($head, "\r\n"));
        }
        $accept = base64_encode(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11', true));
        if (stripos($head, "Sec-WebSocket-Accept: $accept") === false) {
            throw new RuntimeException('cdp: bad Sec-WebSocket-Accept');
        }

        return $cdp;
    }

    /**
     * Call a CDP method and wait for its result; events that arrive meanwhile are kept.
     *
     * @return array<string, mixed> the result object
     */
    public function call(string $method, array $params = [], float $timeout = 15.0): array
    {
        $id = ++$this->nextId;
        $this->sendText(json_encode(['id' => $id, 'method' => $method, 'params' => $params ?: new stdClass()], JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES));
        $deadline = microtime(true) + $timeout;
        while (true) {
            $message = $this->receive($deadline);
            if (($message['id'] ?? null) === $id) {
                if (isset($message['error'])) {
                    throw new RuntimeException("cdp: $method failed: " . json_encode($message['error']));
                }

                return $message['result'] ?? [];
            }
            if (isset($message['method'])) {
                $this->events[] = $message;
            }
        }
    }

    /** Wait for an event (one already received counts). @return array<string, mixed> its params */
    public function waitEvent(string $method, float $timeout = 15.0): array
    {
        foreach ($this->events as $i => $event) {
            if ($event['method'] === $method) {
                unset($this->events[$i]);
                $this->events = array_values($this->events);

                return $event['params'] ?? [];
            }
        }
        $deadline = microtime(true) + $timeout;
        while (true) {
            $message = $this->receive($deadline, "event $method");
            if (($message['method'] ?? null) === $method) {
                return $message['params'] ?? [];
            }
            if (isset($message['method'])) {
                $this->events[] = $message;
            }
        }
    }

    /** Forget the events received so far. */
    public function clearEvents(): void
    {
        $this->events = [];
    }

    /** Evaluate a JavaScript expression in the page and return its value (JSON-able values only). */
    public function evaluate(string $expression, float $timeout = 15.0): mixed
    {
        $result = $this->call('Runtime.evaluate', ['expression' => $expression, 'returnByValue' => true, 'awaitPromise' => true], $timeout);
        if (isset($result['exceptionDetails'])) {
            throw new RuntimeException('cdp: JavaScript exception: ' . json_encode($result['exceptionDetails']));
        }

        return $result['result']['value'] ?? null;
    }

    public function close(): void
    {
        if (is_resource($this->socket)) {
            @fwrite($this->socket, $this->frame(0x8, ''));
            fclose($this->socket);
        }
    }

    /** @return array<string, mixed> the next JSON message */
    private function receive(float $deadline, string $what = 'reply'): array
    {
        $message = '';
        while (true) {
            [$fin, $opcode, $payload] = $this->readFrame($deadline, $what);
            if ($opcode === 0x9) { // ping
                fwrite($this->socket, $this->frame(0xA, $payload));
                continue;
            }
            if ($opcode === 0x8) {
                throw new RuntimeException('cdp: the browser closed the WebSocket');
            }
            if ($opcode === 0xA) {
                continue;
            }
            $message .= $payload;
            if ($fin) {
                return json_decode($message, true, 512, JSON_THROW_ON_ERROR);
            }
        }
    }

    /** @return array{0:bool, 1:int, 2:string} */
    private function readFrame(float $deadline, string $what): array
    {
        [$b0, $b1] = array_values(unpack('C2', $this->read(2, $deadline, $what)));
        $length = $b1 & 0x7F;
        if ($length === 126) {
            $length = unpack('n', $this->read(2, $deadline, $what))[1];
        } elseif ($length === 127) {
            $length = unpack('J', $this->read(8, $deadline, $what))[1];
        }
        $mask = ($b1 & 0x80) !== 0 ? $this->read(4, $deadline, $what) : '';
        $payload = $length > 0 ? $this->read($length, $deadline, $what) : '';
        if ($mask !== '') {
            $payload ^= substr(str_repeat($mask, intdiv($length, 4) + 1), 0, $length); // servers do not mask; just in case
        }

        return [($b0 & 0x80) !== 0, $b0 & 0x0F, $payload];
    }

    private function sendText(string $text): void
    {
        $frame = $this->frame(0x1, $text);
        for ($written = 0; $written < strlen($frame); $written += $n) {
            $n = fwrite($this->socket, substr($frame, $written));
            if ($n === false || $n === 0) {
                throw new RuntimeException('cdp: write failed');
            }
        }
    }

    /** A masked client frame. */
    private function frame(int $opcode, string $payload): string
    {
        $length = strlen($payload);
        $head = chr(0x80 | $opcode);
        if ($length < 126) {
            $head .= chr(0x80 | $length);
        } elseif ($length < 65536) {
            $head .= chr(0x80 | 126) . pack('n', $length);
        } else {
            $head .= chr(0x80 | 127) . pack('J', $length);
        }
        $mask = random_bytes(4);
        $masked = $length === 0 ? '' : $payload ^ substr(str_repeat($mask, intdiv($length, 4) + 1), 0, $length);

        return $head . $mask . $masked;
    }

    private function read(int $length, float $deadline, string $what = 'data'): string
    {
        $buffer = '';
        while (strlen($buffer) < $length) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                throw new RuntimeException("cdp: timed out waiting for $what");
            }
            $read = [$this->socket];
            $write = $except = null;
            if (@stream_select($read, $write, $except, (int) $left, (int) (($left - (int) $left) * 1e6)) === 0) {
                continue;
            }
            $chunk = fread($this->socket, $length - strlen($buffer));
            if ($chunk === false || ($chunk === '' && feof($this->socket))) {
                throw new RuntimeException("cdp: connection closed while waiting for $what");
            }
            $buffer .= $chunk;
        }

        return $buffer;
    }
}
