<?php

/**
 * Minimal PSR-4 autoloader for the rr PHP SDK, for projects without Composer:
 *
 *     require __DIR__ . '/path/to/sdk/php/autoload.php';
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Rr\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
