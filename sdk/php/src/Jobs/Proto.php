<?php

declare(strict_types=1);

namespace Rr\Jobs;

/**
 * Hand-written protobuf for RoadRunner's jobs.v1 messages (no google/protobuf dependency).
 *
 * @internal
 */
final class Proto
{
    public static function varint(int $value): string
    {
        $out = '';
        for ($i = 0; $i < 10; $i++) {
            $byte = $value & 0x7f;
            // logical shift: clear the sign bits an arithmetic shift drags in
            $value = ($value >> 7) & 0x01FFFFFFFFFFFFFF;
            if ($value === 0) {
                return $out . chr($byte);
            }
            $out .= chr($byte | 0x80);
        }

        return $out;
    }

    public static function bytes(int $field, string $value): string
    {
        return self::varint($field << 3 | 2) . self::varint(strlen($value)) . $value;
    }

    public static function int(int $field, int $value): string
    {
        return $value === 0 ? '' : self::varint($field << 3) . self::varint($value);
    }

    /**
     * jobs.v1.Job.
     *
     * @param array<string, string[]> $headers
     */
    public static function job(string $id, string $name, string $payload, array $headers, string $pipeline, int $priority, int $delay, bool $autoAck): string
    {
        $out = ($name === '' ? '' : self::bytes(1, $name)) . self::bytes(2, $id) . ($payload === '' ? '' : self::bytes(3, $payload));
        foreach ($headers as $key => $values) {
            $value = '';
            foreach ((array) $values as $v) {
                $value .= self::bytes(1, (string) $v);
            }
            $out .= self::bytes(4, self::bytes(1, (string) $key) . self::bytes(2, $value));
        }
        $options = self::int(1, $priority) . self::bytes(2, $pipeline) . self::int(3, $delay) . self::int(6, $autoAck ? 1 : 0);

        return $out . self::bytes(5, $options);
    }

    /** @param string[] $names */
    public static function pipelines(array $names): string
    {
        return implode('', array_map(static fn (string $n): string => self::bytes(1, $n), $names));
    }

    /** @param array<string, string> $map */
    public static function declare(array $map): string
    {
        $out = '';
        foreach ($map as $k => $v) {
            $out .= self::bytes(1, self::bytes(1, (string) $k) . self::bytes(2, (string) $v));
        }

        return $out;
    }

    /**
     * Decode a message into [field => list of values] (varints as int, length-delimited as string).
     *
     * @return array<int, list<int|string>>
     */
    public static function fields(string $buf): array
    {
        $out = [];
        $pos = 0;
        $len = strlen($buf);
        while ($pos < $len) {
            $key = self::readVarint($buf, $pos);
            $field = $key >> 3;
            switch ($key & 7) {
                case 0:
                    $out[$field][] = self::readVarint($buf, $pos);
                    break;
                case 1:
                    $pos += 8;
                    break;
                case 2:
                    $n = self::readVarint($buf, $pos);
                    $out[$field][] = (string) substr($buf, $pos, $n);
                    $pos += $n;
                    break;
                case 5:
                    $pos += 4;
                    break;
                default:
                    throw new JobsException('protobuf: unsupported wire type ' . ($key & 7));
            }
            if ($pos > $len) {
                throw new JobsException('protobuf: truncated message');
            }
        }

        return $out;
    }

    private static function readVarint(string $buf, int &$pos): int
    {
        $value = 0;
        for ($shift = 0; $shift < 64; $shift += 7) {
            if ($pos >= strlen($buf)) {
                throw new JobsException('protobuf: truncated varint');
            }
            $byte = ord($buf[$pos++]);
            $value |= ($byte & 0x7f) << $shift;
            if (($byte & 0x80) === 0) {
                return $value;
            }
        }
        throw new JobsException('protobuf: varint overflow');
    }
}
