<?php

declare(strict_types=1);

namespace Rr\Kv;

use Rr\Goridge\Frame;
use Rr\Goridge\Relay;
use Rr\Goridge\RelayInterface;

/**
 * A synchronous goridge RPC client (one call at a time on one connection),
 * the wire format of RoadRunner's rpc plugin: options [seq, method length],
 * payload "Service.Method" . body, the codec in the flags.
 */
final class Rpc
{
    private int $seq = 1;

    public function __construct(private readonly RelayInterface $relay, private readonly string $address = '')
    {
    }

    /**
     * Connects to `tcp://host:port` or `unix://path` (default: $RR_RPC, else tcp://127.0.0.1:6001).
     */
    public static function connect(?string $address = null): self
    {
        $address ??= (getenv('RR_RPC') ?: 'tcp://127.0.0.1:6001');

        return new self(Relay::create($address), $address);
    }

    /**
     * Calls `$method` with `$body` encoded in `$codec` (a Frame::CODEC_* flag); returns the reply body.
     *
     * @throws KvException the server answered an error
     */
    public function call(string $method, string $body, int $codec = Frame::CODEC_PROTO): string
    {
        $seq = $this->seq++;
        $this->relay->send(new Frame($method . $body, [$seq, strlen($method)], $codec));
        $reply = $this->relay->waitFrame();
        if (count($reply->options) !== 2 || $reply->options[0] !== $seq) {
            throw new KvException(sprintf('kv: RPC reply does not match call %d (options %s)', $seq, json_encode($reply->options)));
        }
        $payload = substr($reply->payload, $reply->options[1]);
        if ($reply->hasFlag(Frame::ERROR)) {
            throw new KvException(sprintf("Error '%s' on %s", $payload, $this->address));
        }

        return $payload;
    }
}
