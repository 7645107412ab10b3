<?php

/**
 * Jobs worker for the Rust end-to-end tests (RR_MODE=jobs), on the SDK's Rr\Jobs\Consumer.
 *
 * What it does depends on the job name:
 *   ack                 ack
 *   nack                nack("nope") without redelivery
 *   redeliver           first delivery: nack with redelivery after `delay` (payload, seconds); then ack
 *   requeue             without header `attempt`: requeue after `delay` (payload) with attempt=2; then ack
 *   invalid             reply with a body that is not JSON
 *   empty               reply with an empty body (= ack)
 *   crash               exit(1) without replying
 *   crash_once          exit(1) without replying unless rr redelivered it after a worker failure
 *                       (header x-rr-worker-failures); then ack
 *   error               $worker->error("boom")
 *   push                push the job described by the payload JSON {pipeline,name,payload} over RPC, then ack
 *   slow                sleep `payload` ms, then ack
 * The first delivery of a `redeliver` job is remembered in JOBS_STATE_DIR (marker per id).
 *
 * STDERR: `EVENT READY pid=P mode=M`, and for each job
 *   `EVENT JOB id=I name=N pipeline=P driver=D queue=Q payload=B attempt=A headers=H pid=P`
 * (H: the headers as JSON without spaces, B: the payload with spaces as _).
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Jobs\Consumer;
use Rr\Jobs\Jobs;
use Rr\Payload;

$pid = getmypid();
$log = static function (string $line): void {
    fwrite(STDERR, $line . "\n");
};
$firstTime = static function (string $what): bool {
    $dir = getenv('JOBS_STATE_DIR');
    if ($dir === false || $dir === '') {
        return true;
    }
    $marker = @fopen(rtrim($dir, '/') . '/' . md5($what) . '.done', 'x');
    if ($marker === false) {
        return false;
    }
    fclose($marker);

    return true;
};

$consumer = new Consumer();
$log(sprintf('READY pid=%d mode=%s', $pid, (string) getenv('RR_MODE')));

while ($task = $consumer->waitTask()) {
    $log(sprintf(
        'JOB id=%s name=%s pipeline=%s driver=%s queue=%s payload=%s attempt=%s headers=%s pid=%d',
        $task->id,
        $task->name,
        $task->pipeline,
        $task->driver,
        $task->queue === '' ? '-' : $task->queue,
        str_replace(' ', '_', $task->payload),
        $task->getHeader('attempt') ?? '1',
        json_encode((object) $task->headers, JSON_UNESCAPED_SLASHES),
        $pid,
    ));
    switch ($task->name) {
        case 'nack':
            $task->nack('nope');
            break;
        case 'redeliver':
            if ($firstTime('redeliver-' . $task->id)) {
                $task->nack('again please', true, (int) $task->payload);
            } else {
                $task->ack();
            }
            break;
        case 'requeue':
            if ($task->hasHeader('attempt')) {
                $task->ack();
            } else {
                $task->requeue((int) $task->payload, ['attempt' => '2']);
            }
            break;
        case 'invalid':
            $consumer->getWorker()->respond(new Payload('this is not json'));
            break;
        case 'empty':
            $consumer->getWorker()->respond(new Payload(''));
            break;
        case 'crash':
            $log("CRASH id={$task->id} pid=$pid");
            exit(1);
        case 'crash_once':
            if (!$task->hasHeader('x-rr-worker-failures')) {
                $log("CRASH id={$task->id} pid=$pid");
                exit(1);
            }
            $task->ack();
            break;
        case 'error':
            $consumer->getWorker()->error('boom');
            break;
        case 'push':
            $job = json_decode($task->payload, true, 512, JSON_THROW_ON_ERROR);
            $id = (new Jobs())->push($job['pipeline'], $job['name'], $job['payload'], $job['options'] ?? []);
            $log("PUSHED id=$id pid=$pid");
            $task->ack();
            break;
        case 'slow':
            usleep((int) $task->payload * 1000);
            $task->ack();
            break;
        default:
            $task->ack();
    }
}
$log("STOPPED pid=$pid");
