<?php

/**
 * A careless worker for the Rust end-to-end tests: on the first payload it writes
 * non-protocol bytes straight to the real STDOUT (bypassing the SDK's output buffer),
 * then replies and keeps looping. The server must detect the bad frame, name the worker
 * in its log, kill and replace it.
 *
 * STDERR events: READY pid=P mode=M | GARBAGE pid=P | STOPPED pid=P
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$pid = getmypid();
$worker = Worker::create();
fwrite(STDERR, sprintf("READY pid=%d mode=%s\n", $pid, (string) getenv('RR_MODE')));

$first = true;
while ($payload = $worker->waitPayload()) {
    if ($first) {
        $first = false;
        fwrite(STDERR, "GARBAGE pid=$pid\n");
        fwrite(STDOUT, "hello from a careless echo\n");
        fflush(STDOUT);
    }
    $worker->respond(new Payload('OK'));
}

fwrite(STDERR, "STOPPED pid=$pid\n");
