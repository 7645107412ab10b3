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

$kernel = new App\Kernel([
    new App\TickerDispatcher($finalizer, __DIR__ . '/ticks.log'),
    new App\HttpDispatcher($finalizer, __DIR__ . '/ticks.log'),
]);

exit($kernel->serve());
