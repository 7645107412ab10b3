<?php

declare(strict_types=1);

namespace Rr\Goridge;

/**
 * Relay factory from an `RR_RELAY`-style address.
 */
final class Relay
{
    /**
     * Create a relay from an address:
     *  - `pipes`                      STDIN/STDOUT of this process
     *  - `tcp://host:port`            TCP socket (host must not be empty)
     *  - `unix:///abs/path.sock`      Unix socket, absolute path
     *  - `unix://relative/path.sock`  Unix socket, relative to the working directory
     *
     * @throws RelayException on an unsupported address or a failed connection
     */
    public static function create(string $dsn): RelayInterface
    {
        if ($dsn === 'pipes') {
            return new StreamRelay(STDIN, STDOUT);
        }
        if (!preg_match('#^(?P<scheme>[^:/]+)://(?P<arg1>[^:]+)(?::(?P<arg2>[^:]+))?$#', $dsn, $m)) {
            throw new RelayException("goridge: unsupported relay address '$dsn' (expected pipes, tcp://host:port or unix://path)");
        }

        switch (strtolower($m['scheme'])) {
            case 'tcp':
                $port = $m['arg2'] ?? '';
                if (!ctype_digit($port) || (int) $port > 65535) {
                    throw new RelayException("goridge: relay address '$dsn' needs a numeric port");
                }

                return new SocketRelay(sprintf('tcp://%s:%d', $m['arg1'], (int) $port));
            case 'unix':
                return new SocketRelay('unix://' . $m['arg1']);
            default:
                throw new RelayException("goridge: unknown relay scheme '{$m['scheme']}' in '$dsn'");
        }
    }
}
