<?php

/**
 * Schedule worker for the Rust end-to-end tests of `ticker.schedules`.
 *
 * Context of a schedule run: {"schedule": S, "planned": unix ms, "started": unix ms, ...extra}.
 *
 * Behaviour from env (all optional):
 *   SCHEDULE_SLEEP_MS=MS   sleep MS milliseconds per run before replying
 * A `sleep_ms` key in the run's context (a schedule's `context:`) overrides it.
 *
 * STDERR events (one line each, `EVENT key=value ...`):
 *   READY pid=P mode=M | RUN schedule=S planned=P started=T body=B extra=X fence=F pid=P |
 *   RUN_DONE schedule=S planned=P pid=P | STOPPED pid=P
 * B is the raw body with spaces removed; X is the extra context keys (those other
 * than schedule/planned/started/fence) as compact JSON, or `none`; F is the
 * cluster's fencing token (0 outside cluster mode).
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$pid = getmypid();
$log = static function (string $line): void {
    fwrite(STDERR, $line . "\n");
};
$sleep = getenv('SCHEDULE_SLEEP_MS');
$sleepMs = $sleep !== false && is_numeric($sleep) ? (int) $sleep : 0;

$worker = Worker::create();
$log(sprintf('READY pid=%d mode=%s', $pid, (string) getenv('RR_MODE')));

while (true) {
    $payload = $worker->waitPayload();
    if ($payload === null) {
        $log("STOPPED pid=$pid");
        exit(0);
    }
    $context = json_decode($payload->header !== '' ? $payload->header : '{}', true);
    if (!is_array($context)) {
        $context = [];
    }
    $schedule = isset($context['schedule']) && is_string($context['schedule']) ? $context['schedule'] : 'none';
    $planned = isset($context['planned']) && is_int($context['planned']) ? $context['planned'] : -1;
    $started = isset($context['started']) && is_int($context['started']) ? $context['started'] : -1;
    $runSleepMs = isset($context['sleep_ms']) && is_int($context['sleep_ms']) ? $context['sleep_ms'] : $sleepMs;
    $extra = array_diff_key($context, ['schedule' => 1, 'planned' => 1, 'started' => 1, 'fence' => 1]);
    $extraText = $extra === [] ? 'none' : (string) json_encode($extra);
    $body = str_replace(' ', '', $payload->body);
    $fence = isset($context['fence']) && is_int($context['fence']) ? $context['fence'] : 0;
    $log("RUN schedule=$schedule planned=$planned started=$started body=$body extra=$extraText fence=$fence pid=$pid");
    if ($runSleepMs > 0) {
        usleep($runSleepMs * 1000);
    }
    $log("RUN_DONE schedule=$schedule planned=$planned pid=$pid");
    $worker->respond(new Payload('OK'));
}
