<?php

/**
 * Jobs worker for rr-bench: acks every job and logs nothing, so the bench
 * measures the jobs path (driver, pool, relay), not PHP output.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Jobs\Consumer;

$consumer = new Consumer();
while ($task = $consumer->waitTask()) {
    $task->ack();
}
