<?php

/**
 * Ticker worker for the Rust end-to-end tests (payload body {"tick":N}, context {"lastTick":L}).
 *
 * Behaviour from env (all optional):
 *   TICK_SLEEP_MS=MS         sleep MS milliseconds per tick before replying
 *   TICK_CRASH_ON=N          exit(1) without replying when tick N arrives (once, see TICK_STATE_DIR)
 *   TICK_HANG_ON=N           sleep forever when tick N arrives (once, see TICK_STATE_DIR)
 *   TICK_ERROR_ON=N          reply to tick N with $worker->error("boom on tick N")
 *   TICK_LEAK_KB=K           keep K KiB more memory per tick (RSS grows)
 *   TICK_STATE_DIR=DIR       marker files making CRASH/HANG happen once across processes;
 *                            without it they happen every time tick N arrives
 *   EXIT_BEFORE_HANDSHAKE=1  log BOOT_FAIL and exit(3) before creating the worker
 *   BOOT_SLEEP_MS=MS         log BOOT_SLEEP and sleep MS milliseconds before creating the worker
 *   IGNORE_STOP=1            on a stop request, sleep 60 s instead of exiting
 *
 * STDERR events (one line each, `EVENT key=value ...`):
 *   BOOT_FAIL pid=P | BOOT_SLEEP pid=P ms=MS | READY pid=P mode=M app_env=E | TICK n=N last=L pid=P |
 *   TICK_DONE n=N pid=P | CRASH n=N pid=P | HANG n=N pid=P | ERROR n=N pid=P |
 *   LEAK n=N total_kb=T pid=P | STOP_IGNORED pid=P | STOPPED pid=P
 * L is the raw lastTick value, or `none` when the context has none. E is the APP_ENV
 * variable (from `server.env: {app_env: ...}`), or empty. TICK is logged when a tick
 * arrives, TICK_DONE right before the successful reply.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Payload;
use Rr\Worker;

$pid = getmypid();
$log = static function (string $line): void {
    fwrite(STDERR, $line . "\n");
};
$intEnv = static function (string $name): ?int {
    $value = getenv($name);

    return $value !== false && $value !== '' && is_numeric($value) ? (int) $value : null;
};
// True the first time $what happens across all worker processes sharing TICK_STATE_DIR.
$once = static function (string $what): bool {
    $dir = getenv('TICK_STATE_DIR');
    if ($dir === false || $dir === '') {
        return true;
    }
    $marker = @fopen(rtrim($dir, '/') . '/' . $what . '.done', 'x');
    if ($marker === false) {
        return false;
    }
    fclose($marker);

    return true;
};

if (getenv('EXIT_BEFORE_HANDSHAKE') === '1') {
    $log("BOOT_FAIL pid=$pid");
    exit(3);
}
$bootSleepMs = $intEnv('BOOT_SLEEP_MS');
if ($bootSleepMs !== null && $bootSleepMs > 0) {
    $log("BOOT_SLEEP pid=$pid ms=$bootSleepMs");
    usleep($bootSleepMs * 1000);
}

$sleepMs = $intEnv('TICK_SLEEP_MS');
$crashOn = $intEnv('TICK_CRASH_ON');
$hangOn = $intEnv('TICK_HANG_ON');
$errorOn = $intEnv('TICK_ERROR_ON');
$leakKb = $intEnv('TICK_LEAK_KB');
$leak = [];

$worker = Worker::create();
$log(sprintf('READY pid=%d mode=%s app_env=%s', $pid, (string) getenv('RR_MODE'), (string) getenv('APP_ENV')));

while (true) {
    $payload = $worker->waitPayload();
    if ($payload === null) {
        if (getenv('IGNORE_STOP') === '1') {
            $log("STOP_IGNORED pid=$pid");
            sleep(60);
        }
        $log("STOPPED pid=$pid");
        exit(0);
    }

    $body = json_decode($payload->body, true);
    $context = json_decode($payload->header !== '' ? $payload->header : '{}', true);
    $n = is_array($body) && isset($body['tick']) ? (int) $body['tick'] : -1;
    $last = is_array($context) && isset($context['lastTick']) && is_scalar($context['lastTick'])
        ? (string) $context['lastTick']
        : 'none';
    $log("TICK n=$n last=$last pid=$pid");

    if ($n === $crashOn && $once("crash-$n")) {
        $log("CRASH n=$n pid=$pid");
        exit(1);
    }
    if ($n === $hangOn && $once("hang-$n")) {
        $log("HANG n=$n pid=$pid");
        while (true) {
            sleep(3600);
        }
    }
    if ($leakKb !== null && $leakKb > 0) {
        $leak[] = str_repeat(chr(65 + $n % 26), $leakKb * 1024);
        $log(sprintf('LEAK n=%d total_kb=%d pid=%d', $n, count($leak) * $leakKb, $pid));
    }
    if ($sleepMs !== null && $sleepMs > 0) {
        usleep($sleepMs * 1000);
    }
    if ($n === $errorOn) {
        $log("ERROR n=$n pid=$pid");
        $worker->error("boom on tick $n");
        continue;
    }

    $log("TICK_DONE n=$n pid=$pid");
    $worker->respond(new Payload('OK'));
}
