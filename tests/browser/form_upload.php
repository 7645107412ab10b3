<?php

/**
 * Browser test: headless Chromium fills and submits a multipart upload form served by
 * tests/php/http_form_upload.php through `rr serve`, and the result page must show exactly
 * the fields and files the browser sent. Driven over the Chrome DevTools Protocol (Cdp.php).
 *
 *     RR_BIN=target/debug/rr php tests/browser/form_upload.php
 *
 * Environment:
 *   RR_BIN      the rr binary (required unless BASE_URL is set)
 *   CHROMIUM    the browser (default /usr/bin/chromium; Debian package `chromium`)
 *   BASE_URL    test an already running server instead of starting rr (e.g. http://127.0.0.1:8080)
 *   KEEP_TMP=1  keep the temp directory (config, logs, profile, screenshot.png)
 *
 * Prints one line per check and "N passed, M failed"; exits 1 on any failure, 2 when it cannot run.
 */

declare(strict_types=1);

require __DIR__ . '/Cdp.php';

$root = dirname(__DIR__, 2);
$tmp = sys_get_temp_dir() . '/rr-form-upload-' . getmypid();
@mkdir($tmp . '/uploads', 0777, true);
$processes = [];
$passed = 0;
$failed = 0;

function say(string $line): void
{
    fwrite(STDOUT, $line . "\n");
}

function check(string $name, bool $ok, string $detail = ''): void
{
    global $passed, $failed;
    $ok ? $passed++ : $failed++;
    say(($ok ? 'ok   ' : 'FAIL ') . $name . ($ok || $detail === '' ? '' : ": $detail"));
}

function fatal(string $message, int $code = 2): never
{
    global $failed;
    say("FAIL setup: $message");
    cleanup();
    exit($code === 2 && $failed > 0 ? 1 : $code);
}

/** Start a process; stdout+stderr to $log. @return resource */
function start(string $name, array $command, string $log, ?string $cwd = null)
{
    global $processes;
    $proc = proc_open($command, [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']], $pipes, $cwd);
    if (!is_resource($proc)) {
        fatal("cannot start $name");
    }
    $processes[$name] = $proc;

    return $proc;
}

function running($proc): bool
{
    return proc_get_status($proc)['running'];
}

/** Wait until $condition() returns a non-null value or the timeout passes. */
function waitFor(string $what, float $timeout, callable $condition): mixed
{
    $deadline = microtime(true) + $timeout;
    do {
        $value = $condition();
        if ($value !== null) {
            return $value;
        }
        usleep(50_000);
    } while (microtime(true) < $deadline);
    fatal("timed out after {$timeout}s waiting for $what");
}

function httpGet(string $url, float $timeout = 5.0): ?array
{
    $ctx = stream_context_create(['http' => ['timeout' => $timeout, 'ignore_errors' => true]]);
    $body = @file_get_contents($url, false, $ctx);
    if ($body === false) {
        return null;
    }
    $status = (int) (explode(' ', $http_response_header[0] ?? '')[1] ?? 0);

    return [$status, $body];
}

function cleanup(): void
{
    global $processes, $tmp, $cdp;
    if (isset($cdp)) {
        try {
            $cdp->close();
        } catch (Throwable) {
        }
    }
    // Stop in reverse start order: SIGTERM, then SIGKILL after 10 s.
    foreach (array_reverse($processes, true) as $name => $proc) {
        if (running($proc)) {
            proc_terminate($proc, 15);
            $deadline = microtime(true) + 10;
            while (running($proc) && microtime(true) < $deadline) {
                usleep(50_000);
            }
            if (running($proc)) {
                proc_terminate($proc, 9);
            }
        }
        proc_close($proc);
    }
    $processes = [];
    if (getenv('KEEP_TMP') === '1') {
        say("kept $tmp");
    } elseif (is_dir($tmp)) {
        exec('rm -rf ' . escapeshellarg($tmp));
    }
}

function freePort(): int
{
    $s = stream_socket_server('tcp://127.0.0.1:0');
    $port = (int) substr(strrchr(stream_socket_get_name($s, false), ':'), 1);
    fclose($s);

    return $port;
}

// ------------------------------------------------------------------ server

$baseUrl = getenv('BASE_URL') ?: '';
if ($baseUrl === '') {
    $rr = getenv('RR_BIN') ?: '';
    if ($rr === '' || !is_executable($rr)) {
        fatal('set RR_BIN to the rr binary (or BASE_URL to a running server)');
    }
    $port = freePort();
    $worker = $root . '/tests/php/http_form_upload.php';
    file_put_contents("$tmp/.rr.yaml", <<<YAML
version: '3'
server:
  command: php $worker
http:
  address: 127.0.0.1:$port
  uploads:
    dir: $tmp/uploads
  pool:
    num_workers: 1
YAML);
    $rrProc = start('rr', [$rr, 'serve', '-c', "$tmp/.rr.yaml"], "$tmp/rr.log");
    $baseUrl = "http://127.0.0.1:$port";
    waitFor('rr to serve GET /', 60, static function () use ($rrProc, $baseUrl, $tmp) {
        if (!running($rrProc)) {
            fatal("rr exited early:\n" . file_get_contents("$tmp/rr.log"));
        }

        return (httpGet("$baseUrl/", 1)[0] ?? 0) === 200 ? true : null;
    });
}
say("server: $baseUrl");

// ------------------------------------------------------------------ browser

$chromium = getenv('CHROMIUM') ?: '/usr/bin/chromium';
if (!is_executable($chromium)) {
    fatal("no browser at $chromium (apt-get install chromium, or set CHROMIUM)");
}
$profile = "$tmp/profile";
$browser = start('chromium', [$chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    "--user-data-dir=$profile", '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank'], "$tmp/chromium.log");
$devtoolsPort = waitFor('Chromium DevToolsActivePort', 30, static function () use ($profile, $browser, $tmp) {
    if (!running($browser)) {
        fatal("Chromium exited early:\n" . file_get_contents("$tmp/chromium.log"));
    }
    $lines = @file("$profile/DevToolsActivePort", FILE_IGNORE_NEW_LINES);

    return $lines && ctype_digit($lines[0] ?? '') ? (int) $lines[0] : null;
});
$pageWs = waitFor('a page target', 15, static function () use ($devtoolsPort) {
    $list = httpGet("http://127.0.0.1:$devtoolsPort/json/list", 2);
    foreach (json_decode($list[1] ?? '[]', true) ?: [] as $target) {
        if (($target['type'] ?? '') === 'page' && isset($target['webSocketDebuggerUrl'])) {
            return $target['webSocketDebuggerUrl'];
        }
    }

    return null;
});

// ------------------------------------------------------------------ the test

// Files the browser uploads: a small text file and a binary one with a non-ASCII name.
$files = [
    "$tmp/hello.txt" => "hello from chromium\n",
    "$tmp/dätä bin.bin" => random_bytes(200_000) . "\r\n--boundary-like--\r\n" . random_bytes(1000),
];
foreach ($files as $path => $content) {
    file_put_contents($path, $content);
}
$title = 'Grüße & <tags> "quoted"';

try {
    $cdp = Cdp::connect($pageWs);
    $cdp->call('Page.enable');
    $cdp->call('Runtime.enable');
    $cdp->call('Page.navigate', ['url' => "$baseUrl/"]);
    $cdp->waitEvent('Page.loadEventFired', 20);
    check('form page loaded', $cdp->evaluate("document.getElementById('f') !== null") === true);

    $cdp->evaluate(sprintf("document.getElementById('title').value = %s; document.getElementById('n0').value = 'first'; document.getElementById('n1').value = 'line1\\nline2'; true",
        json_encode($title)));
    $doc = $cdp->call('DOM.getDocument');
    $input = $cdp->call('DOM.querySelector', ['nodeId' => $doc['root']['nodeId'], 'selector' => '#files']);
    $cdp->call('DOM.setFileInputFiles', ['nodeId' => $input['nodeId'], 'files' => array_keys($files)]);
    check('file input holds both files', $cdp->evaluate("document.getElementById('files').files.length") === 2);

    $cdp->clearEvents();
    $cdp->evaluate("document.getElementById('send').click(); true");
    $cdp->waitEvent('Page.loadEventFired', 30);
    $text = $cdp->evaluate("(document.getElementById('result') || {}).textContent || document.body.innerText");
    $shot = $cdp->call('Page.captureScreenshot', ['format' => 'png']);
    file_put_contents("$tmp/screenshot.png", base64_decode($shot['data'] ?? ''));

    $result = json_decode((string) $text, true);
    check('result page has the JSON result', is_array($result), substr((string) $text, 0, 500));
    $result = is_array($result) ? $result : [];
    check('POST multipart/form-data', ($result['method'] ?? '') === 'POST' && str_starts_with($result['contentType'] ?? '', 'multipart/form-data; boundary='), json_encode([$result['method'] ?? null, $result['contentType'] ?? null]));
    check('server parsed the form', ($result['parsed'] ?? null) === true);
    check('text field (UTF-8, markup, quotes) arrives unchanged', ($result['fields']['title'] ?? null) === $title, json_encode($result['fields']['title'] ?? null));
    // Browsers normalise textarea newlines to CRLF in form submissions.
    check('notes[] is a list of both values in order', ($result['fields']['notes'] ?? null) === ['first', "line1\r\nline2"], json_encode($result['fields']['notes'] ?? null));
    check('no file field leaks into the parsed fields', !isset($result['fields']['files']), json_encode($result['fields'] ?? null));
    $got = $result['files'] ?? [];
    check('two uploaded files', count($got) === 2, json_encode($got));
    $i = 0;
    foreach ($files as $path => $content) {
        $f = $got[$i] ?? [];
        $name = basename($path);
        check("files[$i] field path", ($f['field'] ?? '') === "files[$i]", (string) ($f['field'] ?? ''));
        check("files[$i] client name '$name'", ($f['name'] ?? '') === $name, (string) ($f['name'] ?? ''));
        check("files[$i] error 0, size " . strlen($content), ($f['error'] ?? null) === 0 && ($f['size'] ?? null) === strlen($content), json_encode([$f['error'] ?? null, $f['size'] ?? null]));
        check("files[$i] temp file existed during the request with the same bytes", ($f['exists'] ?? false) === true && ($f['sha256'] ?? '') === hash('sha256', $content));
        check("files[$i] mime from the browser", ($f['mime'] ?? '') === ($i === 0 ? 'text/plain' : 'application/octet-stream'), (string) ($f['mime'] ?? ''));
        if (getenv('BASE_URL') === false) {
            check("files[$i] temp file is in uploads.dir", str_starts_with((string) ($f['tmpName'] ?? ''), "$tmp/uploads/"), (string) ($f['tmpName'] ?? ''));
        }
        if (($f['tmpName'] ?? '') !== '') {
            // The server removes temp files once the response is finished.
            $deadline = microtime(true) + 5;
            do {
                $exists = httpGet("$baseUrl/exists?path=" . rawurlencode($f['tmpName']))[1] ?? '?';
            } while ($exists === 'yes' && microtime(true) < $deadline && usleep(50_000) === null);
            check("files[$i] temp file removed after the response", $exists === 'no', "still $exists");
        }
        $i++;
    }
} catch (Throwable $e) {
    check('browser session', false, $e::class . ': ' . $e->getMessage());
}

cleanup();
say("$passed passed, $failed failed");
exit($failed === 0 ? 0 : 1);
