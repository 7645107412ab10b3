<?php

declare(strict_types=1);

namespace Rr\Kv;

/**
 * The storage named in the client is not configured on the server
 * (`no such storage: <name>`).
 */
final class StorageException extends KvException
{
}
