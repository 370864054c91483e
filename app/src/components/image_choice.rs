//! Which image the launch dialog pre-selects, and what each image is good for.
//!
//! The pre-selection is the image that reaches a shell fastest: the minimal microVM kernel with busybox
//! boots in seconds even where KVM is emulated, while the Debian kernel probes hardware for minutes there
//! (and may not reach user space at all). Without it: the first image that is not a test guest.

use crate::model::ImageView;

/// The name the guest build gives the minimal busybox image (`guest/build.sh`).
pub const MINIMAL_IMAGE: &str = "minimal";

/// The id of the image to pre-select, if there are any images.
pub fn default_image(images: &[ImageView]) -> Option<String> {
    images
        .iter()
        .find(|i| i.name == MINIMAL_IMAGE)
        .or_else(|| images.iter().find(|i| !i.is_test))
        .or_else(|| images.first())
        .map(|i| i.id.clone())
}

/// One line on what the image is good for.
pub fn image_hint(image: &ImageView) -> String {
    if image.is_test {
        "A test guest that exercises the VMM's devices: no shell, no network services.".into()
    } else if image.name == MINIMAL_IMAGE {
        "Boots to a busybox shell in seconds: the quickest way to a working console.".into()
    } else if image.name == "debian" {
        "Debian's general kernel: full hardware support, but a slow boot where KVM is emulated.".into()
    } else {
        format!("{}.", image.os)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, is_test: bool) -> ImageView {
        ImageView {
            id: format!("id-{name}"),
            name: name.into(),
            os: "Some OS".into(),
            cmdline: String::new(),
            has_root_disk: false,
            owner_tenant_id: None,
            is_test,
            size_bytes: 0,
            created_at: String::new(),
        }
    }

    #[test]
    fn the_minimal_image_is_preselected_over_debian_and_test_guests() {
        let all = [
            image("debian", false),
            image("minimal", false),
            image("probe", true),
        ];
        assert_eq!(default_image(&all).as_deref(), Some("id-minimal"));
        let no_minimal = [image("probe", true), image("debian", false)];
        assert_eq!(default_image(&no_minimal).as_deref(), Some("id-debian"));
        assert_eq!(
            default_image(&[image("probe", true)]).as_deref(),
            Some("id-probe")
        );
        assert_eq!(default_image(&[]), None);
        assert!(image_hint(&image("minimal", false)).contains("shell"));
        assert_eq!(image_hint(&image("custom", false)), "Some OS.");
    }
}
