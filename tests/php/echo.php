<?php

/**
 * Echo worker for the Rust end-to-end tests: replies with the body and context it received.
 *
 * STDERR events (one line each):
 *   READY pid=P mode=M relay=R     once, after the relay is open
 *   STOPPED pid=P                  when the server asks the worker to stop
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Environment;
use Rr\Payload;
use Rr\Worker;

$env = Environment::fromGlobals();
$worker = Worker::create();
fwrite(STDERR, sprintf("READY pid=%d mode=%s relay=%s\n", getmypid(), $env->getMode(), $env->getRelayAddress()));

while ($payload = $worker->waitPayload()) {
    $worker->respond(new Payload($payload->body, $payload->header));
}

fwrite(STDERR, sprintf("STOPPED pid=%d\n", getmypid()));
