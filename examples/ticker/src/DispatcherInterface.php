<?php

declare(strict_types=1);

namespace App;

/**
 * Serves the application in one run mode (http, jobs, ticker, ...).
 */
interface DispatcherInterface
{
    /** Whether this dispatcher handles the current environment (usually a check of RR_MODE). */
    public function canServe(): bool;

    /** Run the worker loop until the server asks the worker to stop. */
    public function serve(): void;
}
