<?php

/**
 * The soak's PHP app: one script for every pool, chosen by RR_MODE.
 *
 *   http     GET /hello → "ok"; GET /push?id=N → pushes job `soak-N` to pipeline `soak` over RPC, → "pushed"
 *   ticker   answers every tick
 *   jobs     logs `SOAK_JOB id=I` on STDERR, then acks
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Http\HttpWorker;
use Rr\Jobs\Consumer;
use Rr\Jobs\Jobs;
use Rr\Payload;
use Rr\Worker;

switch (getenv('RR_MODE')) {
    case 'http':
        $http = HttpWorker::create();
        $jobs = null;
        while ($request = $http->waitRequest()) {
            if ($request->uri !== '' && str_contains($request->uri, '/push')) {
                $id = 'soak-' . (string) ($request->query['id'] ?? '0');
                $jobs ??= new Jobs();
                $jobs->push('soak', 'soak', $id, ['id' => $id]);
                $http->respond(200, 'pushed', ['Content-Type' => ['text/plain']]);
                continue;
            }
            $http->respond(200, 'ok', ['Content-Type' => ['text/plain']]);
        }
        break;
    case 'jobs':
        $consumer = new Consumer();
        while ($task = $consumer->waitTask()) {
            fwrite(STDERR, "SOAK_JOB id={$task->id}\n");
            $task->ack();
        }
        break;
    default:
        $worker = Worker::create();
        while ($payload = $worker->waitPayload()) {
            $worker->respond(new Payload('ok'));
        }
}
