<?php

/**
 * A worker driven by its payloads, for the pool's integration tests.
 *
 * The body is a command; the reply body says what the worker did:
 *   pid           reply with this worker's pid
 *   echo:TEXT     reply with TEXT
 *   sleep:MS      sleep MS milliseconds, then reply with the pid
 *   error:TEXT    reply with $worker->error(TEXT)
 *   stop:PATH     ask to be stopped ($worker->stop()) unless file PATH exists (it is created
 *                 first); the pool re-sends the payload to another worker, which replies
 *   stop-always   always ask to be stopped (the pool must give up after a few tries)
 *   crash         exit(1) without replying
 * Anything else is echoed back. The context is always echoed back.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$worker = Worker::create();

while ($payload = $worker->waitPayload()) {
    [$command, $argument] = array_pad(explode(':', $payload->body, 2), 2, '');
    switch ($command) {
        case 'pid':
            $worker->respond(new Payload((string) getmypid(), $payload->header));
            break;
        case 'echo':
            $worker->respond(new Payload($argument, $payload->header));
            break;
        case 'sleep':
            usleep(((int) $argument) * 1000);
            $worker->respond(new Payload((string) getmypid(), $payload->header));
            break;
        case 'error':
            $worker->error($argument);
            break;
        case 'stop':
            if (!file_exists($argument)) {
                touch($argument);
                $worker->stop();
                break;
            }
            $worker->respond(new Payload('handled by ' . getmypid(), $payload->header));
            break;
        case 'stop-always':
            $worker->stop();
            break;
        case 'crash':
            exit(1);
        default:
            $worker->respond(new Payload($payload->body, $payload->header));
    }
}
