//! One packet through dnsward's request path (parse → ACL / limits → cache → policy with a
//! denylist, the DGA model and the answer checks → response), with the upstream answer taken
//! from the fuzz input. Input layout: `dnsward_server::fuzzing::Input`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static PATH: OnceLock<dnsward_server::fuzzing::RequestPath> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let path = PATH.get_or_init(dnsward_fuzz::request_path);
    if let Err(e) = dnsward_fuzz::run_and_check(path, data) {
        panic!("{e}");
    }
});
