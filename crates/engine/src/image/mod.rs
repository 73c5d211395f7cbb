//! Building bootable base images.
