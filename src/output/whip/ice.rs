//! Limits the local addresses webrtcbin gathers ICE host candidates on.
//!
//! webrtcbin's ICE agent is libnice's `NiceAgent`, which gathers on every
//! interface but loopback unless it is given addresses with
//! `nice_agent_add_local_address`. No GObject property or signal reaches
//! that function, so it is called through libnice itself, loaded at run
//! time (the library is already in the process: webrtcbin's ICE plugin
//! links it).

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use std::ffi::{c_char, c_int, c_void, CString};
use std::net::IpAddr;

/// The libnice the `nice` GStreamer plugin links on Debian 12.
const LIBNICE: &str = "libnice.so.10";

type AddressNew = unsafe extern "C" fn() -> *mut c_void;
type AddressSetFromString = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type AddressFree = unsafe extern "C" fn(*mut c_void);
type AgentAddLocalAddress = unsafe extern "C" fn(*mut c_void, *const c_void) -> c_int;

/// Checks that each of `addresses` belongs to this machine, by binding a
/// UDP socket to it. libnice gathers no candidate on another address, so
/// the session would fail only when ICE times out.
pub fn check_local_addresses(addresses: &[IpAddr]) -> Result<(), String> {
    for address in addresses {
        if let Err(error) = std::net::UdpSocket::bind((*address, 0)) {
            return Err(format!(
                "--ice-address {address} cannot be used: {error}; give an address of one of \
                 this machine's interfaces (see `ip address`)"
            ));
        }
    }
    Ok(())
}

/// Makes `webrtc` gather host candidates on `addresses` only. Call it
/// before the first offer.
pub fn restrict_host_addresses(webrtc: &gst::Element, addresses: &[IpAddr]) -> Result<(), String> {
    if addresses.is_empty() {
        return Ok(());
    }
    let ice = webrtc.property::<glib::Object>("ice-agent");
    if ice.find_property("agent").is_none() {
        return Err("webrtcbin's ICE agent is not libnice's; --ice-address needs it".into());
    }
    let agent = ice.property::<glib::Object>("agent");
    let library = Library::open(LIBNICE)?;
    // SAFETY: the symbols are libnice's public functions with the C
    // signatures declared above (libnice 0.1, stable ABI since 0.1.0).
    unsafe {
        let address_new: AddressNew = library.symbol("nice_address_new")?;
        let set_from_string: AddressSetFromString =
            library.symbol("nice_address_set_from_string")?;
        let address_free: AddressFree = library.symbol("nice_address_free")?;
        let add_local: AgentAddLocalAddress = library.symbol("nice_agent_add_local_address")?;
        for address in addresses {
            let text = CString::new(address.to_string()).expect("an IP address has no NUL");
            let nice_address = address_new();
            if nice_address.is_null() {
                return Err("libnice could not allocate an address".into());
            }
            let parsed = set_from_string(nice_address, text.as_ptr()) != 0;
            let added = parsed
                && add_local(agent.as_ptr() as *mut c_void, nice_address as *const c_void) != 0;
            address_free(nice_address);
            if !added {
                return Err(format!("libnice refused the ICE address {address}"));
            }
        }
    }
    Ok(())
}

/// A shared library opened with `dlopen`, closed on drop.
struct Library(*mut c_void);

impl Library {
    fn open(name: &str) -> Result<Self, String> {
        let c_name = CString::new(name).expect("a library name has no NUL");
        // SAFETY: dlopen with a valid C string; the handle is checked.
        let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return Err(format!(
                "cannot load {name} for --ice-address; install libnice10 (gstreamer1.0-nice)"
            ));
        }
        Ok(Self(handle))
    }

    /// Looks up `name` as a function of type `T`.
    ///
    /// # Safety
    /// `T` must be the function's real signature.
    unsafe fn symbol<T: Copy>(&self, name: &str) -> Result<T, String> {
        let c_name = CString::new(name).expect("a symbol name has no NUL");
        let pointer = libc::dlsym(self.0, c_name.as_ptr());
        if pointer.is_null() {
            return Err(format!("{LIBNICE} has no {name}"));
        }
        Ok(std::mem::transmute_copy(&pointer))
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and is closed once; libnice
        // stays loaded while webrtcbin's plugin holds it.
        unsafe {
            libc::dlclose(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_ice_address_rejected() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check_local_addresses(&[loopback]), Ok(()));

        // TEST-NET-1 (RFC 5737) is reserved for documentation, so no
        // interface of a test machine should carry it.
        let foreign: IpAddr = "192.0.2.1".parse().unwrap();
        let error = check_local_addresses(&[loopback, foreign]).unwrap_err();
        assert!(error.contains("--ice-address 192.0.2.1"), "{error}");
        assert!(error.contains("this machine's interfaces"), "{error}");
    }

    #[test]
    fn loopback_only_candidates() {
        gst::init().unwrap();
        let Ok(webrtc) = gst::ElementFactory::make("webrtcbin").build() else {
            panic!("webrtcbin is missing: install gstreamer1.0-plugins-bad and gstreamer1.0-nice");
        };
        restrict_host_addresses(&webrtc, &["127.0.0.1".parse().unwrap()]).unwrap();
        restrict_host_addresses(&webrtc, &[]).unwrap();
    }
}
