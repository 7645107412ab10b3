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
 *   stream:N      reply as a stream: N frames "chunk I" with the STREAM flag, then a last frame "done"
 *   stream-until-stop  stream "chunk I" frames until the server sends a stream stop, then end the
 *                 stream with an empty frame (at most 100000 frames; the last one says "never stopped")
 *   stream-forever  stream "tick" frames every 10 ms and never look for a stream stop
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
        case 'stream':
            for ($i = 0; $i < (int) $argument; $i++) {
                $worker->respond(new Payload("chunk $i", $payload->header, false));
            }
            $worker->respond(new Payload('done', $payload->header));
            break;
        case 'stream-until-stop':
            for ($i = 0; $i < 100000; $i++) {
                if ($worker->receivedStreamStop()) {
                    $worker->respond(new Payload(''));
                    break 2;
                }
                $worker->respond(new Payload("chunk $i", $payload->header, false));
            }
            $worker->respond(new Payload('never stopped', $payload->header));
            break;
        case 'stream-forever':
            while (true) {
                $worker->respond(new Payload('tick', $payload->header, false));
                usleep(10_000);
            }
        default:
            $worker->respond(new Payload($payload->body, $payload->header));
    }
}
