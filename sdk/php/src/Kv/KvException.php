<?php

declare(strict_types=1);

namespace Rr\Kv;

/**
 * A kv call failed: the server answered an error, or the reply was malformed.
 */
class KvException extends \RuntimeException
{
}
