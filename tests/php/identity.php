<?php

/**
 * Reports who the worker runs as, then echoes like echo.php.
 *
 * STDERR events (one line each):
 *   IDENTITY pid=P uid=U gid=G groups=G1,G2   once, from /proc/self/status (effective ids)
 *   STOPPED pid=P                             when the server asks the worker to stop
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$ids = ['Uid' => '?', 'Gid' => '?', 'Groups' => ''];
foreach (file('/proc/self/status', FILE_IGNORE_NEW_LINES) ?: [] as $line) {
    [$key, $value] = array_pad(explode(':', $line, 2), 2, '');
    if (array_key_exists($key, $ids)) {
        $fields = preg_split('/\s+/', trim($value)) ?: [];
        // Uid/Gid list real, effective, saved, filesystem: report the effective one.
        $ids[$key] = $key === 'Groups' ? implode(',', $fields) : ($fields[1] ?? '?');
    }
}
$worker = Worker::create();
fwrite(STDERR, sprintf("IDENTITY pid=%d uid=%s gid=%s groups=%s\n", getmypid(), $ids['Uid'], $ids['Gid'], $ids['Groups']));

while ($payload = $worker->waitPayload()) {
    $worker->respond(new Payload($payload->body, $payload->header));
}

fwrite(STDERR, sprintf("STOPPED pid=%d\n", getmypid()));
