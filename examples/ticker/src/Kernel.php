<?php

declare(strict_types=1);

namespace App;

/**
 * Picks the first dispatcher that can serve the current environment and runs it.
 */
final class Kernel
{
    /**
     * @param DispatcherInterface[] $dispatchers in order of preference
     */
    public function __construct(private readonly array $dispatchers)
    {
    }

    /**
     * @return int process exit code: 0 after a clean stop, 1 when no dispatcher matches
     */
    public function serve(): int
    {
        foreach ($this->dispatchers as $dispatcher) {
            if ($dispatcher->canServe()) {
                $dispatcher->serve();

                return 0;
            }
        }

        fwrite(STDERR, sprintf(
            "no dispatcher can serve RR_MODE='%s' (tried: %s); start this app through the rr server\n",
            (string) getenv('RR_MODE'),
            implode(', ', array_map(static fn (object $d): string => $d::class, $this->dispatchers)),
        ));

        return 1;
    }
}
