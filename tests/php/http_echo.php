<?php

/**
 * HTTP echo worker for the end-to-end tests of the http plugin (RR_MODE=http), on Rr\Http\HttpWorker.
 *
 * Reply: status 200, `Content-Type: application/json`, body = JSON object
 *   pid, method, uri, protocol, remoteAddr
 *   headers      name => [values]            (as received; no Host, it is in uri)
 *   cookies      name => value
 *   rawQuery, query (parse_str of rawQuery)
 *   body         raw body (invalid UTF-8 replaced by U+FFFD), bodyLength, bodySha256 (of the raw bytes)
 *                (a parsed request with an empty body shows body "[]", as roadrunner-php/http gives it)
 *   parsed       bool; parsedBody: the form tree when parsed, else null
 *   uploads      the uploads tree; every leaf {name,mime,size,error,tmpName} gains
 *                exists (tmpName is a file now), sha256 (of its contents, null if absent),
 *                actualSize (filesize, null if absent)
 *   attributes   name => value (incl. rr_parsed_body)
 * Empty maps are encoded as {} (headers, cookies, query, parsedBody, uploads).
 *
 * Query parameters steer the reply (all optional, combinable):
 *   status=N               reply status N (default 200)
 *   header[Name]=v         add response header Name: v; header[Name][]=a&header[Name][]=b for several values
 *   sleep_ms=N             sleep N ms before replying
 *   error=MSG              $worker->error(MSG) instead of a reply ("1" => "http_echo: requested error")
 *   crash=N                exit(N) (1 if N is not a number > 0) without replying; the worker dies mid-request
 *   raw=1                  reply body = the raw request body (Content-Type application/octet-stream)
 *   stream=N               stream the reply as N chunks "chunk i\n" (i = 0..N-1); stream_delay_ms=M between chunks
 *
 * STDERR events (one line each):
 *   READY pid=P mode=M relay=R       once, after the relay is open
 *   REQUEST pid=P METHOD URI         for every request, before the reply
 *   STREAM_STOPPED pid=P             when the server stopped a streamed reply (client gone)
 *   STOPPED pid=P                    when the server asks the worker to stop
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Environment;
use Rr\Http\HttpWorker;
use Rr\Http\Request;

$env = Environment::fromGlobals();
$http = HttpWorker::create();
fwrite(STDERR, sprintf("READY pid=%d mode=%s relay=%s\n", getmypid(), $env->getMode(), $env->getRelayAddress()));

/** Add exists/sha256/actualSize to every upload leaf. */
function describeUploads(array $tree): array
{
    foreach ($tree as $key => $node) {
        if (!is_array($node)) {
            continue;
        }
        if (array_key_exists('tmpName', $node) && array_key_exists('name', $node)) {
            $path = (string) $node['tmpName'];
            $exists = $path !== '' && is_file($path);
            $node['exists'] = $exists;
            $node['sha256'] = $exists ? hash_file('sha256', $path) : null;
            $node['actualSize'] = $exists ? filesize($path) : null;
            $tree[$key] = $node;
        } else {
            $tree[$key] = describeUploads($node);
        }
    }

    return $tree;
}

function describe(Request $r): array
{
    return [
        'pid' => getmypid(),
        'method' => $r->method,
        'uri' => $r->uri,
        'protocol' => $r->protocol,
        'remoteAddr' => $r->remoteAddr,
        'headers' => $r->headers ?: new stdClass(),
        'cookies' => $r->cookies ?: new stdClass(),
        'rawQuery' => $r->rawQuery,
        'query' => $r->query ?: new stdClass(),
        'body' => $r->body,
        'bodyLength' => strlen($r->body),
        'bodySha256' => hash('sha256', $r->body),
        'parsed' => $r->parsed,
        'parsedBody' => $r->parsedBody === [] ? new stdClass() : $r->parsedBody,
        'uploads' => describeUploads($r->uploads) ?: new stdClass(),
        'attributes' => $r->attributes,
    ];
}

while ($request = $http->waitRequest()) {
    fwrite(STDERR, sprintf("REQUEST pid=%d %s %s\n", getmypid(), $request->method, $request->uri));
    $q = $request->query;
    clearstatcache(true); // a long-running worker would otherwise see stale is_file() results

    if (isset($q['sleep_ms']) && is_numeric($q['sleep_ms'])) {
        usleep((int) $q['sleep_ms'] * 1000);
    }
    if (isset($q['crash'])) {
        $code = is_numeric($q['crash']) && (int) $q['crash'] > 0 ? (int) $q['crash'] : 1;
        fwrite(STDERR, sprintf("CRASH pid=%d code=%d\n", getmypid(), $code));
        exit($code);
    }
    if (isset($q['error'])) {
        $http->getWorker()->error($q['error'] === '1' ? 'http_echo: requested error' : (string) $q['error']);
        continue;
    }

    $status = isset($q['status']) && is_numeric($q['status']) ? (int) $q['status'] : 200;
    $headers = [];
    foreach ((array) ($q['header'] ?? []) as $name => $values) {
        $headers[(string) $name] = array_map('strval', (array) $values);
    }

    if (isset($q['stream']) && is_numeric($q['stream'])) {
        $n = (int) $q['stream'];
        $delay = (int) ($q['stream_delay_ms'] ?? 0);
        $chunks = (static function () use ($n, $delay) {
            for ($i = 0; $i < $n; $i++) {
                if ($i > 0 && $delay > 0) {
                    usleep($delay * 1000);
                }
                yield "chunk $i\n";
            }
        })();
        if (!$http->respondStream($status, $chunks, $headers + ['Content-Type' => ['text/plain']])) {
            fwrite(STDERR, sprintf("STREAM_STOPPED pid=%d\n", getmypid()));
        }
        continue;
    }

    if (($q['raw'] ?? '') === '1') {
        $http->respond($status, $request->body, $headers + ['Content-Type' => ['application/octet-stream']]);
        continue;
    }

    $body = json_encode(describe($request), JSON_THROW_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES);
    $http->respond($status, $body, $headers + ['Content-Type' => ['application/json']]);
}

fwrite(STDERR, sprintf("STOPPED pid=%d\n", getmypid()));
