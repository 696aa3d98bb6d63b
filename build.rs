// Links libsrt, which the SRT output drives directly through its C API.
fn main() {
    if let Err(error) = pkg_config::Config::new()
        .atleast_version("1.4")
        .probe("srt")
    {
        panic!("libsrt was not found through pkg-config ({error}); run scripts/install-deps.sh");
    }
}
