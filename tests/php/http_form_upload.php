<?php

/**
 * HTTP worker for the browser form-upload test (tests/browser/form_upload.sh), on Rr\Http\HttpWorker.
 *
 *   GET  /            HTML page: <form id="f" method="post" action="/upload" enctype="multipart/form-data">
 *                     with a text input "title", a textarea "notes[]" pair and a file input "files[]" (multiple)
 *   POST /upload      HTML page whose <pre id="result"> holds JSON:
 *                       {"method", "contentType", "parsed", "fields": <parsed form tree>,
 *                        "files": [{"field", "name", "mime", "size", "error", "tmpName", "exists", "sha256"}]}
 *                     (files flattened in tree order; field is the bracket path, e.g. "files[0]")
 *   GET  /exists?path=P  text "yes" or "no": whether P is a file now (to see the server remove temp files)
 *   anything else     404
 *
 * STDERR: "READY pid=P" once, "REQUEST pid=P METHOD URI" per request.
 */

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

use Rr\Http\HttpWorker;
use Rr\Http\Request;

$http = HttpWorker::create();
fwrite(STDERR, sprintf("READY pid=%d\n", getmypid()));

/** @return list<array<string, mixed>> */
function flattenUploads(array $tree, string $prefix = ''): array
{
    $out = [];
    foreach ($tree as $key => $node) {
        $path = $prefix === '' ? (string) $key : $prefix . '[' . $key . ']';
        if (is_array($node) && array_key_exists('tmpName', $node) && array_key_exists('name', $node)) {
            $tmp = (string) $node['tmpName'];
            $exists = $tmp !== '' && is_file($tmp);
            $out[] = ['field' => $path, 'name' => $node['name'], 'mime' => $node['mime'] ?? '', 'size' => $node['size'] ?? null,
                'error' => $node['error'] ?? null, 'tmpName' => $tmp, 'exists' => $exists, 'sha256' => $exists ? hash_file('sha256', $tmp) : null];
        } elseif (is_array($node)) {
            array_push($out, ...flattenUploads($node, $path));
        }
    }

    return $out;
}

function page(string $title, string $body): string
{
    return '<!doctype html><html><head><meta charset="utf-8"><title>' . htmlspecialchars($title) . '</title></head><body>' . $body . '</body></html>';
}

function handle(Request $r): array
{
    $path = (string) parse_url($r->uri, PHP_URL_PATH);
    $html = ['Content-Type' => 'text/html; charset=utf-8'];
    if ($r->method === 'GET' && $path === '/') {
        return [200, page('upload form', '<h1>Upload</h1>'
            . '<form id="f" method="post" action="/upload" enctype="multipart/form-data">'
            . '<input id="title" name="title"><textarea id="n0" name="notes[]"></textarea><textarea id="n1" name="notes[]"></textarea>'
            . '<input id="files" type="file" name="files[]" multiple><button id="send" type="submit">send</button></form>'), $html];
    }
    if ($r->method === 'POST' && $path === '/upload') {
        $result = ['method' => $r->method, 'contentType' => $r->getHeaderLine('Content-Type'), 'parsed' => $r->parsed,
            'fields' => $r->parsedBody, 'files' => flattenUploads($r->uploads)];
        $json = json_encode($result, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);

        return [200, page('uploaded', '<h1>Uploaded</h1><pre id="result">' . htmlspecialchars($json) . '</pre>'), $html];
    }
    if ($r->method === 'GET' && $path === '/exists') {
        // PHP caches the last stat() result for the life of the process; a long-running worker must clear it.
        clearstatcache(true);
        return [200, is_file((string) ($r->query['path'] ?? '')) ? 'yes' : 'no', ['Content-Type' => 'text/plain']];
    }

    return [404, 'not found', ['Content-Type' => 'text/plain']];
}

while ($request = $http->waitRequest()) {
    fwrite(STDERR, sprintf("REQUEST pid=%d %s %s\n", getmypid(), $request->method, $request->uri));
    [$status, $body, $headers] = handle($request);
    $http->respond($status, $body, $headers);
}
