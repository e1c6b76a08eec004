//! The HTTP/1.1 fast lane's parsers (`src/proxy/h1/`): request heads
//! (only plainly simple ones are taken), the upstream's answer heads, and the
//! chunked-body scanner (the end found never depends on how the bytes are
//! cut). Outside input on both sides: no panic, no failed assertion.
#![no_main]

use iumgate::proxy::h1::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    fuzzing::requests(rest);
    fuzzing::answers(rest, sel & 1 == 1);
    fuzzing::chunks(rest, usize::from(sel) * 7);
});
