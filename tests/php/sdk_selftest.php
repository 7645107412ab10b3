<?php

/**
 * Self-test of the rr PHP SDK (sdk/php), no server needed:
 *
 *     php tests/php/sdk_selftest.php
 *
 * Prints one line per check and finally "N passed, M failed"; exits 1 on any failure.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Environment;
use Rr\Goridge\Frame;
use Rr\Goridge\Relay;
use Rr\Goridge\RelayException;
use Rr\Goridge\SocketRelay;
use Rr\Goridge\StreamRelay;
use Rr\Payload;
use Rr\Worker;

$passed = 0;
$failed = 0;

function check(string $name, callable $test): void
{
    global $passed, $failed;
    try {
        $test();
        $passed++;
        fwrite(STDOUT, "ok   $name\n");
    } catch (Throwable $e) {
        $failed++;
        fwrite(STDOUT, "FAIL $name: " . get_class($e) . ': ' . $e->getMessage() . "\n");
    }
}

function expect(bool $condition, string $message): void
{
    if (!$condition) {
        throw new RuntimeException($message);
    }
}

function same(mixed $expected, mixed $actual, string $what): void
{
    if ($expected !== $actual) {
        throw new RuntimeException(sprintf('%s: expected %s, got %s', $what, var_export($expected, true), var_export($actual, true)));
    }
}

/** @return resource */
function memory(string $bytes = '')
{
    $stream = fopen('php://memory', 'w+b');
    fwrite($stream, $bytes);
    rewind($stream);

    return $stream;
}

/** Decode every frame in $bytes. @return Frame[] */
function frames(string $bytes): array
{
    $relay = new StreamRelay(memory($bytes), memory());
    $out = [];
    while (true) {
        try {
            $out[] = $relay->waitFrame();
        } catch (RelayException $e) {
            if (str_contains($e->getMessage(), '0 of 12 bytes')) {
                return $out;
            }
            throw $e;
        }
    }
}

function expectThrows(callable $fn, string $needle): string
{
    try {
        $fn();
    } catch (Throwable $e) {
        expect(str_contains($e->getMessage(), $needle), "exception message lacks '$needle': " . $e->getMessage());

        return $e->getMessage();
    }
    throw new RuntimeException("expected an exception containing '$needle'");
}

/** A worker whose relay reads $input and writes into a memory stream returned by reference. */
function memoryWorker(string $input, &$out): Worker
{
    $out = memory();

    return new Worker(new StreamRelay(memory($input), $out), false);
}

function written($out): string
{
    rewind($out);

    return stream_get_contents($out);
}

/** Stream wrapper handing out at most 3 bytes per read, to exercise short reads. */
final class TrickleStream
{
    public static string $data = '';
    private int $pos = 0;
    /** @var resource|null */
    public $context;

    public function stream_open(string $path, string $mode, int $options, ?string &$opened): bool
    {
        $this->pos = 0;
        return true;
    }

    public function stream_read(int $count): string
    {
        $chunk = substr(self::$data, $this->pos, min(3, $count));
        $this->pos += strlen($chunk);
        return $chunk;
    }

    public function stream_eof(): bool
    {
        return $this->pos >= strlen(self::$data);
    }

    public function stream_write(string $data): int
    {
        return strlen($data);
    }

    public function stream_set_option(int $option, int $arg1, ?int $arg2): bool
    {
        return false;
    }
}

// ---------------------------------------------------------------- framing

check('encode: exact byte layout of a frame with one option', function (): void {
    $bytes = (new Frame('ctxBODY', [3], Frame::CODEC_JSON, Frame::STREAM))->encode();
    same(12 + 4 + 7, strlen($bytes), 'length');
    same(0x14, ord($bytes[0]), 'byte0 (version 1, HL 4)');
    same(0x08, ord($bytes[1]), 'flags');
    same(pack('V', 7), substr($bytes, 2, 4), 'payload length LE');
    same(pack('V', crc32(substr($bytes, 0, 6))), substr($bytes, 6, 4), 'crc LE');
    same(0x01, ord($bytes[10]), 'stream byte');
    same(0x00, ord($bytes[11]), 'reserved byte');
    same(pack('V', 3), substr($bytes, 12, 4), 'option 0');
    same('ctxBODY', substr($bytes, 16), 'payload');
});

check('encode: known vectors (computed independently with Python zlib)', function (): void {
    same('1309090000006dfc98440000' . bin2hex('{"pid":1}'), bin2hex((new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode()), 'pid handshake frame');
    same('140002000000a5298c830000000000004f4b', bin2hex((new Frame('OK', [0]))->encode()), 'reply "OK" with empty context');
});

check('constants match protocol.md', function (): void {
    same([0x01, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80], [Frame::CONTROL, Frame::CODEC_RAW, Frame::CODEC_JSON, Frame::CODEC_MSGPACK, Frame::CODEC_GOB, Frame::ERROR, Frame::CODEC_PROTO], 'flags');
    same([0x01, 0x02, 0x04, 0x08], [Frame::STREAM, Frame::STOP, Frame::PING, Frame::PONG], 'stream byte');
});

check('round trip: encode -> StreamRelay::send -> php://memory -> waitFrame', function (): void {
    $cases = [
        new Frame('', [], 0),
        new Frame('', [0], 0),
        new Frame('{"a":1}hello', [7], Frame::CODEC_RAW, 0),
        new Frame(str_repeat("\x00\xff", 300000), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFFFFFF], Frame::CODEC_PROTO | Frame::ERROR, Frame::PING | Frame::STREAM),
    ];
    $out = memory();
    $relay = new StreamRelay(memory(), $out);
    foreach ($cases as $frame) {
        $relay->send($frame);
    }
    $decoded = frames(written($out));
    same(count($cases), count($decoded), 'frame count');
    foreach ($cases as $i => $frame) {
        same($frame->payload, $decoded[$i]->payload, "payload #$i");
        same($frame->options, $decoded[$i]->options, "options #$i");
        same($frame->flags, $decoded[$i]->flags, "flags #$i");
        same($frame->stream, $decoded[$i]->stream, "stream #$i");
    }
    same($cases[2]->encode(), Frame::decode($cases[2]->encode())->encode(), 'Frame::decode round trip');
});

check('short reads: a stream returning 3 bytes per read still yields whole frames', function (): void {
    stream_wrapper_register('trickle', TrickleStream::class);
    TrickleStream::$data = (new Frame('ctx' . str_repeat('x', 1000), [3], Frame::CODEC_JSON))->encode()
        . (new Frame('second', [0]))->encode();
    $relay = new StreamRelay(fopen('trickle://x', 'rb'), memory());
    $a = $relay->waitFrame();
    $b = $relay->waitFrame();
    same('ctx' . str_repeat('x', 1000), $a->payload, 'first payload');
    same([3], $a->options, 'first options');
    same('second', $b->payload, 'second payload');
});

check('CRC mismatch is detected and names expected/actual', function (): void {
    $bytes = (new Frame('hello', [0]))->encode();
    $bytes[2] = chr(ord($bytes[2]) ^ 0x01); // corrupt the payload length
    $msg = expectThrows(fn () => (new StreamRelay(memory($bytes), memory()))->waitFrame(), 'CRC mismatch');
    expect(str_contains($msg, 'expected 0x') && str_contains($msg, 'actual 0x'), "message names both CRCs: $msg");
});

check('stray STDOUT text is rejected as a bad frame', function (): void {
    expectThrows(fn () => Frame::decode("hello from a careless echo\n"), 'CRC mismatch');
});

check('EOF before/inside a frame is a clear error', function (): void {
    expectThrows(fn () => (new StreamRelay(memory(''), memory()))->waitFrame(), 'unexpected EOF');
    $truncated = substr((new Frame('0123456789', [0]))->encode(), 0, 20);
    expectThrows(fn () => (new StreamRelay(memory($truncated), memory()))->waitFrame(), 'unexpected EOF');
});

check('too many options are refused on encode', function (): void {
    expectThrows(fn () => (new Frame('', range(1, 11)))->encode(), 'at most 10 options');
});

// ---------------------------------------------------------------- worker protocol

check('handshake: pid request answered with CONTROL 0x01, no options, {"pid":getmypid()}', function (): void {
    $in = (new Frame('{"pid":4242}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode()
        . (new Frame('{"lastTick":0}{"tick":0}', [14], Frame::CODEC_JSON))->encode();
    $worker = memoryWorker($in, $out);
    $payload = $worker->waitPayload();
    expect($payload instanceof Payload, 'a payload after the handshake');
    same('{"tick":0}', $payload->body, 'body');
    same('{"lastTick":0}', $payload->header, 'context');
    same(['lastTick' => 0], $payload->getContext(), 'getContext');
    $replies = frames(written($out));
    same(1, count($replies), 'one reply');
    same(Frame::CONTROL, $replies[0]->flags, 'reply flags');
    same([], $replies[0]->options, 'reply options');
    same(json_encode(['pid' => getmypid()]), $replies[0]->payload, 'reply body');
    same(0x13, ord(written($out)[0]), 'reply byte0');
});

check('control {"stop":true} makes waitPayload() return null', function (): void {
    $worker = memoryWorker((new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode(), $out);
    same(null, $worker->waitPayload(), 'waitPayload');
    same('', written($out), 'nothing written');
});

check('stream STOP and PONG frames are skipped', function (): void {
    $in = (new Frame('', [], 0, Frame::STOP))->encode()
        . (new Frame('', [], 0, Frame::PONG))->encode()
        . (new Frame('body', [0]))->encode();
    $worker = memoryWorker($in, $out);
    same('body', $worker->waitPayload()?->body, 'payload after skipped frames');
});

check('data frame without the context option is an error', function (): void {
    $worker = memoryWorker((new Frame('body'))->encode(), $out);
    expectThrows(fn () => $worker->waitPayload(), 'context length option missing');
});

check('respond: flags 0, one option = context length, payload = context ++ body', function (): void {
    $worker = memoryWorker('', $out);
    $worker->respond(new Payload('OK'));
    $worker->respond(new Payload('body', '{"k":"v"}'));
    $worker->respond(new Payload('chunk', null, false));
    [$a, $b, $c] = frames(written($out));
    same([0, [0], 'OK', 0], [$a->flags, $a->options, $a->payload, $a->stream], 'empty context reply');
    same([0, [9], '{"k":"v"}body'], [$b->flags, $b->options, $b->payload], 'reply with context');
    same(Frame::STREAM, $c->stream, 'eos=false sets STREAM');
    same(0x14, ord(written($out)[0]), 'byte0 of reply');
});

check('error: flags 0x40, no options, payload = message', function (): void {
    $worker = memoryWorker('', $out);
    $worker->error('boom on tick 3');
    $raw = written($out);
    $f = Frame::decode($raw);
    same([Frame::ERROR, [], 'boom on tick 3'], [$f->flags, $f->options, $f->payload], 'error frame');
    same(0x13, ord($raw[0]), 'byte0');
});

check('stop: data frame, empty body, context exactly {"stop":true}', function (): void {
    $worker = memoryWorker('', $out);
    $worker->stop();
    $f = Frame::decode(written($out));
    same([0, [13], '{"stop":true}'], [$f->flags, $f->options, $f->payload], 'stop frame');
});

check('Payload defaults and getContext', function (): void {
    $p = new Payload();
    same(['', '', true, []], [$p->body, $p->header, $p->eos, $p->getContext()], 'defaults');
    expectThrows(fn () => (new Payload('', '"str"'))->getContext(), 'not a JSON object');
});

check('Environment defaults and values', function (): void {
    $d = new Environment();
    same(['', 'pipes', 'tcp://127.0.0.1:6001'], [$d->getMode(), $d->getRelayAddress(), $d->getRPCAddress()], 'defaults');
    $e = new Environment(['RR_MODE' => 'ticker', 'RR_RELAY' => 'tcp://127.0.0.1:7000', 'RR_RPC' => 'tcp://127.0.0.1:6002']);
    same(['ticker', 'tcp://127.0.0.1:7000', 'tcp://127.0.0.1:6002'], [$e->getMode(), $e->getRelayAddress(), $e->getRPCAddress()], 'values');
    putenv('RR_MODE=selftest');
    same('selftest', Environment::fromGlobals()->getMode(), 'fromGlobals sees putenv');
});

// ---------------------------------------------------------------- relays

check('Relay::create rejects bad addresses', function (): void {
    expectThrows(fn () => Relay::create('tcp://:7000'), 'unsupported relay address');
    expectThrows(fn () => Relay::create('tcp://127.0.0.1'), 'numeric port');
    expectThrows(fn () => Relay::create('udp://127.0.0.1:1'), 'unknown relay scheme');
    expectThrows(fn () => Relay::create('nonsense'), 'unsupported relay address');
    expect(Relay::create('pipes') instanceof StreamRelay, 'pipes gives a StreamRelay');
});

check('Relay::create tcp:// and unix:// connect and exchange frames', function (): void {
    $sockPath = sys_get_temp_dir() . '/rr-selftest-' . getmypid() . '.sock';
    @unlink($sockPath);
    $servers = [
        'tcp' => stream_socket_server('tcp://127.0.0.1:0', $errno, $errstr),
        'unix' => stream_socket_server('unix://' . $sockPath, $errno, $errstr),
    ];
    try {
        foreach ($servers as $scheme => $server) {
            expect($server !== false, "listen $scheme: $errstr");
            $dsn = $scheme === 'tcp' ? 'tcp://' . stream_socket_get_name($server, false) : 'unix://' . $sockPath;
            $relay = Relay::create($dsn);
            expect($relay instanceof SocketRelay, "$dsn gives a SocketRelay");
            $conn = stream_socket_accept($server, 2);
            fwrite($conn, (new Frame('{"pid":1}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode());
            $worker = new Worker($relay, false);
            fwrite($conn, (new Frame('{"stop":true}', [], Frame::CONTROL | Frame::CODEC_JSON))->encode());
            same(null, $worker->waitPayload(), "$scheme: stop after handshake");
            $reply = (new StreamRelay($conn, $conn))->waitFrame();
            same([Frame::CONTROL, json_encode(['pid' => getmypid()])], [$reply->flags, $reply->payload], "$scheme: pid reply");
            fclose($conn);
            expectThrows(fn () => $relay->waitFrame(), 'unexpected EOF');
        }
    } finally {
        @unlink($sockPath);
    }
});

check('output interception: echo goes to STDERR, STDOUT stays clean', function (): void {
    $code = 'require ' . var_export(__DIR__ . '/../../sdk/php/autoload.php', true) . ';'
        . '$m = fopen("php://memory", "w+b");'
        . 'new Rr\Worker(new Rr\Goridge\StreamRelay($m, $m));'
        . 'echo "careless echo\n"; print "and print\n";';
    $proc = proc_open([PHP_BINARY, '-r', $code], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    $stdout = stream_get_contents($pipes[1]);
    $stderr = stream_get_contents($pipes[2]);
    $rc = proc_close($proc);
    same(0, $rc, 'child exit code');
    same('', $stdout, 'child stdout');
    same("careless echo\nand print\n", $stderr, 'child stderr');
});

fwrite(STDOUT, "$passed passed, $failed failed\n");
exit($failed === 0 ? 0 : 1);
