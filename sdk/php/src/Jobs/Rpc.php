<?php

declare(strict_types=1);

namespace Rr\Jobs;

use Rr\Goridge\Frame;
use Rr\Goridge\Relay;
use Rr\Goridge\RelayInterface;

/**
 * A minimal goridge RPC client (one call at a time) for the jobs service.
 *
 * Request frame: options [seq, strlen(method)], payload = method . body, flags = codec.
 * The reply echoes both options; its ERROR flag marks the server's error text.
 */
final class Rpc
{
    private static int $seq = 1;

    public function __construct(private readonly RelayInterface $relay)
    {
    }

    /** Connect to `tcp://host:port` or `unix://path` (default: RR_RPC, else tcp://127.0.0.1:6001). */
    public static function connect(?string $address = null): self
    {
        $address ??= \Rr\Environment::fromGlobals()->getRPCAddress();

        return new self(Relay::create($address));
    }

    /**
     * Call `Service.Method` with an encoded body; the reply body.
     *
     * @throws JobsException when the server answers an error or breaks the protocol
     */
    public function call(string $method, string $body, int $codec = Frame::CODEC_PROTO): string
    {
        $seq = self::$seq++;
        $this->relay->send(new Frame($method . $body, [$seq, strlen($method)], $codec));
        $frame = $this->relay->waitFrame();
        if (count($frame->options) !== 2 || $frame->options[0] !== $seq) {
            throw new JobsException(sprintf('rpc: invalid reply to %s (options %s, sent seq %d)', $method, json_encode($frame->options), $seq));
        }
        $reply = substr($frame->payload, $frame->options[1]);
        if ($frame->hasFlag(Frame::ERROR)) {
            throw new JobsException($reply);
        }

        return $reply;
    }
}
