<?php

/**
 * Entry point of the ticker example: boots a tiny kernel that picks a dispatcher by RR_MODE.
 *
 * Runs on our SDK (sdk/php) or, unchanged, on the official spiral/roadrunner-worker package
 * when `composer require spiral/roadrunner-worker` has created vendor/ next to this file.
 */

declare(strict_types=1);

if (is_file(__DIR__ . '/vendor/autoload.php')) {
    require __DIR__ . '/vendor/autoload.php';
}
if (!class_exists('Spiral\RoadRunner\Worker') && !class_exists('Rr\Worker')) {
    require __DIR__ . '/../../sdk/php/autoload.php';
}

// The example's own classes (App\ => src/).
spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'App\\')) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 4)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

$finalizer = new App\Finalizer();
$finalizer->addFinalizer(static fn () => gc_collect_cycles());

// RR_MODE=jobs: the jobs plugin's tasks, on the rr SDK's Rr\Jobs\Consumer (loaded here
// even when vendor/ provides the official worker, since it does not ship a jobs consumer).
$jobsDispatcher = new class ($finalizer) implements App\DispatcherInterface {
    public function __construct(private readonly App\Finalizer $finalizer)
    {
    }

    public function canServe(): bool
    {
        return getenv('RR_MODE') === 'jobs';
    }

    public function serve(): void
    {
        if (!class_exists(\Rr\Jobs\Consumer::class)) {
            require __DIR__ . '/../../sdk/php/autoload.php';
        }
        $consumer = new \Rr\Jobs\Consumer();
        fwrite(STDERR, sprintf("jobs worker pid %d ready\n", getmypid()));

        while ($task = $consumer->waitTask()) {
            try {
                fwrite(STDERR, sprintf(
                    "job %s (%s) from pipeline %s: %s, handled by pid %d\n",
                    $task->id,
                    $task->name,
                    $task->pipeline,
                    $task->payload,
                    getmypid(),
                ));
                $task->ack();
            } catch (\Throwable $e) {
                // Redeliver once the app is healthy again, 5 s later.
                $task->isAnswered() || $task->nack($e, true, 5);
            }
            $this->finalizer->finalize();
        }
    }
};

$kernel = new App\Kernel([
    new App\TickerDispatcher($finalizer, __DIR__ . '/ticks.log'),
    new App\HttpDispatcher($finalizer, __DIR__ . '/ticks.log'),
    $jobsDispatcher,
]);

exit($kernel->serve());
