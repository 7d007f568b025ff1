/* The members of a tar stream held in memory: one pass over the 512-byte headers, no copies. Built on first
 * use by training/native.py and called through ctypes by training/tario.py, whose pure-Python reader it
 * replaces when a compiler is present (same members, same names; that reader still reports every error).
 *
 * flowprep_tar_scan(buf, len, start, out, max_members, result) scans the members that lie wholly in
 * buf[start:len). A member's unit is its pax ('x', 'g') or GNU long-name ('L') headers plus its own header,
 * data and padding; for each unit it writes 5 int64 to out: type flag, name offset, name length (into buf:
 * the pax `path`, the GNU long name, or the ustar prefix + '/' + name, see below), data offset, data size.
 * A ustar prefix makes the name two pieces: then name length is -1 and the Python side joins them.
 *
 * result[0]: bytes consumed, a whole number of units from start; result[1]: status, 0 = the next unit is
 * incomplete (result[2] = bytes from result[0] it needs, at least), 1 = end-of-archive block, 2 = a header
 * it does not vouch for at result[0] (bad checksum, a size over 1 TiB or unreadable), 3 = `out` is full.
 * Returns the members written. Every read stays inside buf[0:len), whatever the bytes. */
#include <stdint.h>
#include <string.h>

#define BLOCK 512
#define MAX_SIZE ((int64_t)1 << 40) /* a member over 1 TiB is a corrupt header, not data */

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* A numeric field as the Python reader reads it: base-256 when the high bit is set, else the octal digits
 * up to the first NUL, spaces around them allowed. Anything else is -1, which the caller hands over. */
static int64_t octal_or_base256(const unsigned char *field, int n)
{
    int64_t v = 0;
    if (field[0] & 0x80) { /* positive base-256 (GNU): sizes over 8 GiB */
        for (int i = 1; i < n; i++) {
            if (v > MAX_SIZE) return -1;
            v = (v << 8) | field[i];
        }
        return v;
    }
    int end = 0;
    while (end < n && field[end]) end++;
    int i = 0, j = end;
    while (i < j && is_space(field[i])) i++;
    while (j > i && is_space(field[j - 1])) j--;
    for (; i < j; i++) {
        if (field[i] < '0' || field[i] > '7') return -1;
        v = v * 8 + (field[i] - '0');
    }
    return v;
}

static int checksum_ok(const unsigned char *h)
{
    int64_t sum = 8 * ' '; /* the checksum field itself counts as spaces */
    for (int i = 0; i < BLOCK; i++) sum += (i >= 148 && i < 156) ? 0 : h[i];
    return octal_or_base256(h + 148, 8) == sum; /* -1 (unreadable) never equals a sum */
}

static int all_zero(const unsigned char *h)
{
    for (int i = 0; i < BLOCK; i++)
        if (h[i]) return 0;
    return 1;
}

static int64_t padded(int64_t size) { return (size + BLOCK - 1) / BLOCK * BLOCK; }

/* The `path` and `size` records of a pax header ("<len> key=value\n" each). 0, or -1 where a record is not
 * plainly well-formed (the Python reader then decides what it is): digits then a space, a length inside
 * the header, an ASCII key (the Python reader decodes keys strictly). */
static int pax_records(const unsigned char *buf, int64_t off, int64_t size, int64_t *path_off, int64_t *path_len,
                       int64_t *pax_size)
{
    int64_t pos = off, end = off + size;
    while (pos < end && buf[pos] != 0) {
        int64_t len = 0, p = pos;
        while (p < end && buf[p] >= '0' && buf[p] <= '9' && len <= MAX_SIZE) len = len * 10 + (buf[p++] - '0');
        if (p == pos || p >= end || buf[p] != ' ' || len <= 0 || len > end - pos) return -1;
        const unsigned char *key = buf + p + 1, *rec_end = buf + pos + len - 1; /* record ends with '\n' */
        if (rec_end < key) return -1;
        const unsigned char *eq = memchr(key, '=', (size_t)(rec_end - key));
        const unsigned char *key_end = eq ? eq : rec_end;
        for (const unsigned char *k = key; k < key_end; k++)
            if (*k >= 0x80) return -1;
        if (eq) {
            int64_t klen = eq - key, voff = (eq + 1) - buf, vlen = rec_end - (eq + 1);
            if (klen == 4 && !memcmp(key, "path", 4)) {
                *path_off = voff;
                *path_len = vlen;
            } else if (klen == 4 && !memcmp(key, "size", 4)) {
                int64_t v = vlen > 0 ? 0 : -2; /* -2: not a size this scanner vouches for */
                for (int64_t i = 0; i < vlen && v >= 0; i++) {
                    unsigned char d = buf[voff + i];
                    v = d < '0' || d > '9' || v > MAX_SIZE ? -2 : v * 10 + (d - '0');
                }
                *pax_size = v > MAX_SIZE ? -2 : v;
            }
        }
        pos += len;
    }
    return 0;
}

static int64_t cstr_len(const unsigned char *s, int64_t n)
{
    const unsigned char *z = memchr(s, 0, (size_t)n);
    return z ? z - s : n;
}

int64_t flowprep_tar_scan(const unsigned char *buf, int64_t len, int64_t start, int64_t *out, int64_t max_members,
                          int64_t *result)
{
    int64_t pos = start, count = 0;
    result[2] = 0;
    for (;;) {
        if (count == max_members) {
            result[0] = pos, result[1] = 3;
            return count;
        }
        int64_t unit = pos, path_off = -1, path_len = 0, pax_size = -1;
        for (;;) { /* headers of one unit: pax / long-name records, then the member's own header */
            if (len - pos < BLOCK) goto incomplete;
            const unsigned char *h = buf + pos;
            if (all_zero(h)) {
                result[0] = unit, result[1] = 1;
                return count;
            }
            if (!checksum_ok(h)) {
                result[0] = unit, result[1] = 2;
                return count;
            }
            unsigned char kind = h[156];
            int64_t size = pax_size != -1 ? pax_size : octal_or_base256(h + 124, 12);
            if (size < 0 || size > MAX_SIZE) { /* garbage or overflow: the Python reader reports it */
                result[0] = unit, result[1] = 2;
                return count;
            }
            if (kind == 'x' || kind == 'g' || kind == 'L') {
                if (len - pos - BLOCK < padded(size)) goto incomplete;
                if (kind == 'x' && pax_records(buf, pos + BLOCK, size, &path_off, &path_len, &pax_size)) {
                    result[0] = unit, result[1] = 2;
                    return count;
                }
                if (kind == 'L') path_off = pos + BLOCK, path_len = cstr_len(buf + pos + BLOCK, size);
                pos += BLOCK + padded(size);
                continue;
            }
            if (len - pos - BLOCK < padded(size)) goto incomplete;
            int64_t *m = out + 5 * count;
            m[0] = kind;
            if (path_off >= 0) {
                m[1] = path_off, m[2] = path_len;
            } else {
                int ustar_prefix = !memcmp(h + 257, "ustar", 5) && h[345] != 0;
                m[1] = pos, m[2] = ustar_prefix ? -1 : cstr_len(h, 100);
            }
            m[3] = pos + BLOCK, m[4] = size;
            count++;
            pos += BLOCK + padded(size);
            break;
        }
        continue;
    incomplete:
        result[0] = unit, result[1] = 0;
        result[2] = (pos - unit) + BLOCK; /* at least the next header; the caller reads a chunk more anyway */
        if (len - pos >= BLOCK) { /* the header is here: the unit needs its data too */
            const unsigned char *h = buf + pos;
            int64_t size = pax_size >= 0 ? pax_size : octal_or_base256(h + 124, 12);
            if (size < 0 || size > MAX_SIZE) size = 0;
            result[2] = (pos - unit) + BLOCK + padded(size);
        }
        return count;
    }
}
