<?php

declare(strict_types=1);

namespace Rr;

use Rr\Goridge\Frame;
use Rr\Goridge\Relay;
use Rr\Goridge\RelayException;
use Rr\Goridge\RelayInterface;
use Rr\Goridge\StreamRelay;

/**
 * A worker process talking to the server over a goridge relay.
 *
 *     $worker = Worker::create();
 *     while ($payload = $worker->waitPayload()) {
 *         $worker->respond(new Payload('OK'));
 *     }
 */
final class Worker
{
    private static bool $outputIntercepted = false;

    /**
     * @param RelayInterface $relay                the channel to the server
     * @param bool           $interceptSideEffects send echo/print output to STDERR so it cannot corrupt a `pipes` relay
     */
    public function __construct(private readonly RelayInterface $relay, bool $interceptSideEffects = true)
    {
        if ($interceptSideEffects) {
            self::interceptOutput();
        }
    }

    /**
     * Create a worker on the relay named by `RR_RELAY` (default `pipes`).
     *
     * @throws RelayException when the relay address is invalid or unreachable
     */
    public static function create(bool $interceptSideEffects = true): self
    {
        return new self(Relay::create(Environment::fromGlobals()->getRelayAddress()), $interceptSideEffects);
    }

    /** The underlying relay. */
    public function getRelay(): RelayInterface
    {
        return $this->relay;
    }

    /**
     * Block until the server sends work. Control frames are handled here: the PID
     * handshake is answered, stream PONG/STOP frames are skipped.
     *
     * @return Payload|null the next payload, or null when the server asks the worker to stop
     * @throws RelayException on EOF, I/O errors and invalid frames
     */
    public function waitPayload(): ?Payload
    {
        while (true) {
            $frame = $this->relay->waitFrame();

            if ($frame->hasFlag(Frame::CONTROL)) {
                $command = json_decode($frame->payload, true);
                if (!is_array($command)) {
                    throw new RelayException('rr: invalid control frame, JSON object expected: ' . substr($frame->payload, 0, 200));
                }
                if (!empty($command['stop'])) {
                    return null;
                }
                if (!empty($command['pid'])) {
                    $this->relay->send(new Frame(self::json(['pid' => getmypid()]), [], Frame::CONTROL));
                    continue;
                }
                throw new RelayException('rr: unknown control frame: ' . substr($frame->payload, 0, 200));
            }

            if (($frame->stream & (Frame::STOP | Frame::PONG)) !== 0) {
                continue; // stream stop / pong: nothing is being streamed, nothing to do
            }

            $contextLength = $frame->options[0] ?? null;
            if ($contextLength === null || $contextLength > strlen($frame->payload)) {
                throw new RelayException(sprintf(
                    'rr: bad data frame: context length option %s, payload %d bytes',
                    $contextLength === null ? 'missing' : (string) $contextLength,
                    strlen($frame->payload),
                ));
            }

            return new Payload(substr($frame->payload, $contextLength), substr($frame->payload, 0, $contextLength));
        }
    }

    /**
     * Send a reply: one option (context length), payload = context ++ body.
     * A payload with eos=false is sent as a stream chunk (STREAM bit in byte 10).
     *
     * @param int|null $codec optional codec flag for byte 1 (Frame::CODEC_*), 0 by default
     * @throws RelayException
     */
    public function respond(Payload $payload, ?int $codec = null): void
    {
        $this->relay->send(new Frame(
            $payload->header . $payload->body,
            [strlen($payload->header)],
            $codec ?? 0,
            $payload->eos ? 0 : Frame::STREAM,
        ));
    }

    /**
     * While streaming a response: check, without blocking, whether the server sent a stream
     * STOP (the client went away). PONG frames are consumed. Relays that cannot be polled
     * (not a {@see StreamRelay}) always report false.
     *
     * After a STOP the worker must end the stream with one frame without the STREAM bit
     * (e.g. `respond(new Payload(''))`); the server drains frames until it sees it.
     *
     * @throws RelayException
     */
    public function receivedStreamStop(): bool
    {
        while ($this->relay instanceof StreamRelay && $this->relay->hasFrame()) {
            $frame = $this->relay->waitFrame();
            if (($frame->stream & Frame::STOP) !== 0) {
                return true;
            }
            if (($frame->stream & Frame::PONG) !== 0) {
                continue;
            }
            throw new RelayException(sprintf('rr: unexpected frame while streaming a response (flags 0x%02x, stream byte 0x%02x)', $frame->flags, $frame->stream));
        }

        return false;
    }

    /**
     * Report a failure for the current payload (ERROR flag, no options). The worker stays in the pool.
     *
     * @throws RelayException
     */
    public function error(string $message): void
    {
        $this->relay->send(new Frame($message, [], Frame::ERROR));
    }

    /**
     * Ask the server to retire this worker: reply with an empty body and context `{"stop":true}`.
     * The server re-dispatches the current payload to another worker and stops this one.
     *
     * @throws RelayException
     */
    public function stop(): void
    {
        $this->respond(new Payload('', self::json(['stop' => true])));
    }

    /** Route everything written through PHP's output layer (echo, print, printf...) to STDERR. */
    private static function interceptOutput(): void
    {
        if (self::$outputIntercepted) {
            return;
        }
        self::$outputIntercepted = true;
        $stderr = defined('STDERR') ? STDERR : fopen('php://stderr', 'wb');
        // Displayed PHP errors go straight to stderr instead of through the output layer.
        $display = strtolower((string) ini_get('display_errors'));
        if (!in_array($display, ['', '0', 'off', 'false', 'no', 'stderr'], true)) {
            ini_set('display_errors', 'stderr');
        }
        ob_start(static function (string $chunk) use ($stderr): string {
            if ($chunk !== '') {
                fwrite($stderr, $chunk);
            }

            return '';
        }, 1);
    }

    private static function json(array $value): string
    {
        return json_encode($value, JSON_THROW_ON_ERROR);
    }
}
