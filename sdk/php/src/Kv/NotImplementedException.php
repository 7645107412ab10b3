<?php

declare(strict_types=1);

namespace Rr\Kv;

/**
 * The storage's driver cannot do this (memcached cannot report expiries).
 */
final class NotImplementedException extends KvException
{
}
