<?php

declare(strict_types=1);

namespace App;

/**
 * Callbacks that reset stateful services between two units of work.
 */
final class Finalizer
{
    /** @var callable[] */
    private array $finalizers = [];

    public function addFinalizer(callable $finalizer): void
    {
        $this->finalizers[] = $finalizer;
    }

    public function finalize(): void
    {
        foreach ($this->finalizers as $finalizer) {
            $finalizer();
        }
    }
}
