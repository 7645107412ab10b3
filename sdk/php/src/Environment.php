<?php

declare(strict_types=1);

namespace Rr;

/**
 * The worker's view of the variables the server exports (RR_MODE, RR_RELAY, RR_RPC).
 */
final class Environment
{
    /**
     * @param array<string, string> $env variable name => value
     */
    public function __construct(private readonly array $env = [])
    {
    }

    /** Read the process environment (getenv(), $_ENV and $_SERVER, later sources win). */
    public static function fromGlobals(): self
    {
        $env = [];
        foreach ([getenv(), $_ENV, $_SERVER] as $source) {
            foreach ($source as $name => $value) {
                if (is_string($value)) {
                    $env[(string) $name] = $value;
                }
            }
        }

        return new self($env);
    }

    /** The plugin that started this worker (`RR_MODE`: http, jobs, ticker, ...), '' when unset. */
    public function getMode(): string
    {
        return $this->env['RR_MODE'] ?? '';
    }

    /** The relay address (`RR_RELAY`), default `pipes`. */
    public function getRelayAddress(): string
    {
        return $this->env['RR_RELAY'] ?? 'pipes';
    }

    /** The RPC address (`RR_RPC`), default `tcp://127.0.0.1:6001`. */
    public function getRPCAddress(): string
    {
        return $this->env['RR_RPC'] ?? 'tcp://127.0.0.1:6001';
    }
}
