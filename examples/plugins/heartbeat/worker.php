<?php

/**
 * The heartbeat plugin's PHP worker: logs every beat to stderr (rr shows it
 * in its log) and replies.
 *
 *   server:
 *     command: php worker.php
 */

declare(strict_types=1);

require __DIR__ . '/../../../sdk/php/autoload.php';

use Rr\Environment;
use Rr\Payload;
use Rr\Worker;

if (Environment::fromGlobals()->getMode() !== 'heartbeat') {
    fwrite(STDERR, "this worker only serves the heartbeat plugin (RR_MODE=heartbeat)\n");
    exit(1);
}

$worker = Worker::create();

while ($payload = $worker->waitPayload()) {
    $beat = json_decode($payload->body, true);
    if (!is_array($beat)) {
        $worker->error('not a heartbeat: ' . $payload->body);
        continue;
    }
    fwrite(STDERR, sprintf(
        "HEARTBEAT n=%d message=%s pid=%d\n",
        (int) ($beat['beat'] ?? -1),
        (string) ($beat['message'] ?? ''),
        getmypid(),
    ));
    $worker->respond(new Payload('ok'));
}
