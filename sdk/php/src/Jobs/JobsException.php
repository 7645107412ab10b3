<?php

declare(strict_types=1);

namespace Rr\Jobs;

/**
 * A jobs RPC call failed (the server's error text is the message), or a task was misused.
 */
final class JobsException extends \RuntimeException
{
}
