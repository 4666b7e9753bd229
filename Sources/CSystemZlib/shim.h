#ifndef RECURRENTKIT_CSYSTEMZLIB_SHIM_H
#define RECURRENTKIT_CSYSTEMZLIB_SHIM_H

// The system's zlib (Debian's zlib1g-dev), for the zip reader's inflate and CRC-32.
// `inflateInit2` is a macro (it passes zlib's version and the stream's size), which Swift
// cannot call; this inline function makes it callable. Nothing else belongs here.

#include <zlib.h>

/// Starts a raw deflate stream (no zlib header or trailer), as a zip member stores it:
/// `inflateInit2(stream, -MAX_WBITS)`.
static inline int csystemzlib_inflate_init_raw(z_stream *stream) {
    return inflateInit2(stream, -MAX_WBITS);
}

#endif
