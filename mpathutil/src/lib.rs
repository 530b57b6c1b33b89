//! `mpathutil`: everything sm-rs knows about dm-multipath.
