//! Element chains as data: factory names, properties and caps.
//!
//! Sources and encoders describe what they need here instead of building
//! elements directly, so the description can be checked on a machine where the
//! element's hardware (and so its factory) is absent, and built into real
//! elements where it is present.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::fmt;

/// One property value, kept as the string GStreamer deserializes for the
/// property's own type (integers, booleans, enum nicks, caps, structures).
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub name: String,
    pub value: String,
}

/// One element of a chain: its factory name and the properties to set on it.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementSpec {
    pub factory: String,
    pub name: Option<String>,
    pub properties: Vec<Property>,
}

impl ElementSpec {
    pub fn new(factory: &str) -> Self {
        Self {
            factory: factory.to_string(),
            name: None,
            properties: Vec::new(),
        }
    }

    /// A `capsfilter` that restricts the chain to `caps`.
    pub fn caps_filter(caps: &str) -> Self {
        Self::new("capsfilter").property("caps", caps)
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    pub fn property(mut self, name: &str, value: impl ToString) -> Self {
        self.properties.push(Property {
            name: name.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// The value set for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|property| property.name == name)
            .map(|property| property.value.as_str())
    }

    /// Creates the element and sets every property, checking that each exists.
    pub fn build(&self) -> Result<gst::Element, BuildError> {
        let mut builder = gst::ElementFactory::make(&self.factory);
        if let Some(name) = &self.name {
            builder = builder.name(name.as_str());
        }
        let element = builder.build().map_err(|_| BuildError::MissingElement {
            factory: self.factory.clone(),
        })?;
        for property in &self.properties {
            self.set(&element, property)?;
        }
        Ok(element)
    }

    /// Sets one property from its string form, checking the name, the
    /// conversion to the property's type and the property's range.
    fn set(&self, element: &gst::Element, property: &Property) -> Result<(), BuildError> {
        let Some(pspec) = element.find_property(&property.name) else {
            return Err(BuildError::UnknownProperty {
                factory: self.factory.clone(),
                property: property.name.clone(),
            });
        };
        let invalid = || BuildError::InvalidValue {
            factory: self.factory.clone(),
            property: property.name.clone(),
            value: property.value.clone(),
        };
        let value = gst::glib::Value::deserialize_with_pspec(&property.value, &pspec)
            .map_err(|_| invalid())?;
        if !pspec.value_is_valid(&value) {
            return Err(invalid());
        }
        element.set_property_from_value(&property.name, &value);
        Ok(())
    }
}

impl fmt::Display for ElementSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.factory)?;
        for property in &self.properties {
            write!(f, " {}={}", property.name, property.value)?;
        }
        Ok(())
    }
}

/// Elements linked one after the other, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainSpec {
    pub elements: Vec<ElementSpec>,
}

impl ChainSpec {
    pub fn new(elements: Vec<ElementSpec>) -> Self {
        Self { elements }
    }

    pub fn push(&mut self, element: ElementSpec) {
        self.elements.push(element);
    }

    pub fn factories(&self) -> Vec<&str> {
        self.elements.iter().map(|e| e.factory.as_str()).collect()
    }

    /// The first element made by `factory`, if the chain has one.
    pub fn find(&self, factory: &str) -> Option<&ElementSpec> {
        self.elements.iter().find(|e| e.factory == factory)
    }

    /// Builds every element, adds them to `bin` and links them in order.
    /// Returns the first and last element of the chain.
    pub fn build_into(&self, bin: &gst::Bin) -> Result<(gst::Element, gst::Element), BuildError> {
        let elements = self
            .elements
            .iter()
            .map(ElementSpec::build)
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (elements.first(), elements.last()) else {
            return Err(BuildError::EmptyChain);
        };
        bin.add_many(&elements)
            .map_err(|e| BuildError::Link(e.to_string()))?;
        gst::Element::link_many(&elements).map_err(|_| BuildError::Link(self.to_string()))?;
        Ok((first.clone(), last.clone()))
    }
}

impl fmt::Display for ChainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.elements.iter().map(|e| e.to_string()).collect();
        write!(f, "{}", parts.join(" ! "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "GStreamer element '{factory}' is not available; install the plugin that provides it \
         (gst-inspect-1.0 {factory} tells whether it is registered)"
    )]
    MissingElement { factory: String },
    #[error("GStreamer element '{factory}' has no property '{property}'")]
    UnknownProperty { factory: String, property: String },
    #[error("GStreamer element '{factory}' rejects {property}={value}")]
    InvalidValue {
        factory: String,
        property: String,
        value: String,
    },
    #[error("an element chain is empty")]
    EmptyChain,
    #[error("failed to link elements: {0}")]
    Link(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_factories_and_properties() {
        let chain = ChainSpec::new(vec![
            ElementSpec::new("videotestsrc").property("is-live", true),
            ElementSpec::caps_filter("video/x-raw,width=640"),
        ]);
        assert_eq!(
            chain.to_string(),
            "videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=640"
        );
    }

    #[test]
    fn get_returns_last_value_set() {
        let element = ElementSpec::new("x264enc")
            .property("bitrate", 1000)
            .property("bitrate", 2000);
        assert_eq!(element.get("bitrate"), Some("2000"));
        assert_eq!(element.get("missing"), None);
    }

    #[test]
    fn build_rejects_unknown_property() {
        gst::init().unwrap();
        let result = ElementSpec::new("fakesink")
            .property("no-such-thing", 1)
            .build();
        assert!(matches!(result, Err(BuildError::UnknownProperty { .. })));
    }

    #[test]
    fn build_rejects_invalid_values() {
        gst::init().unwrap();
        for (name, value) in [
            ("bitrate", "5000000"),
            ("pass", "nosuch"),
            ("bitrate", "fast"),
        ] {
            let result = ElementSpec::new("x264enc").property(name, value).build();
            assert!(
                matches!(result, Err(BuildError::InvalidValue { .. })),
                "{name}={value}"
            );
        }
        let element = ElementSpec::new("x264enc")
            .property("bitrate", 2500)
            .property("speed-preset", "veryfast")
            .build()
            .unwrap();
        assert_eq!(element.property::<u32>("bitrate"), 2500);
    }

    #[test]
    fn build_names_missing_factory() {
        gst::init().unwrap();
        let error = ElementSpec::new("nosuchelement").build().unwrap_err();
        assert!(error.to_string().contains("'nosuchelement'"));
    }
}
