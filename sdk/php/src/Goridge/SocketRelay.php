<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * Relay over a TCP or Unix socket: the server listens, the worker connects.
 */
final class SocketRelay extends StreamRelay
{
    /**
     * @param string $address stream_socket_client address: `tcp://host:port` or `unix:///path`
     * @param float  $connectTimeout seconds per attempt
     * @param int    $attempts connection attempts (100 ms apart) before giving up
     */
    public function __construct(private readonly string $address, float $connectTimeout = 5.0, int $attempts = 5)
    {
        $socket = false;
        $errstr = '';
        for ($i = 0; $i < max(1, $attempts) && $socket === false; $i++) {
            if ($i > 0) {
                usleep(100_000);
            }
            $socket = @stream_socket_client($address, $errno, $errstr, $connectTimeout);
        }
        if ($socket === false) {
            throw new RelayException(sprintf('goridge: unable to connect to %s: %s', $address, $errstr));
        }
        stream_set_blocking($socket, true);
        // Workers may idle for a long time between payloads: never time out reads.
        stream_set_timeout($socket, 365 * 86400);
        parent::__construct($socket, $socket);
    }

    /** The address this relay connected to. */
    public function getAddress(): string
    {
        return $this->address;
    }
}
