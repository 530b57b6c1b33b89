//! What udev makes of a SCSI disk: the properties systemd-udevd records in
//! `/run/udev/data/b<major>:<minor>` and the `by-id` link it names after `ID_SERIAL`.
//!
//! `ID_SERIAL` is what `60-persistent-storage.rules` imports from
//! `scsi_id --export --whitelisted` (systemd's `scsi_id`, `scsi_serial.c`): from VPD page
//! 0x83 the first designator associated with the LUN in scsi_id's search order (NAA
//! IEEE-registered-extended, NAA IEEE-registered, other NAA, EUI-64, T10 vendor id, vendor
//! specific; binary before ASCII), as the designator type digit and the identifier (binary
//! in lower-case hex); a vendor-specific one gets the inquiry's 8-byte vendor and 16-byte
//! model in front. Without page 0x83: `S`, vendor, model and the page 0x80 serial. Blank
//! runs become one `_` (udev's `replace_whitespace`). sg3_utils' `55-scsi-sg3_id.rules`,
//! when installed, runs first and sets the same values for these designators (`0$vendor_
//! $model_$id`, `S$vendor_$model_$serial`, which differ only for a vendor field using all
//! eight bytes; the simulator renders scsi_id's form).

/// The inquiry identity of a disk: the fields as the device returns them (blank-padded).
#[derive(Debug, Clone, Copy)]
pub struct Inquiry<'a> {
    pub vendor: &'a str,
    pub model: &'a str,
}

impl Inquiry<'_> {
    fn fields(self) -> String {
        format!("{:<8.8}{:<16.16}", self.vendor, self.model)
    }

    /// The vendor and model as they appear at the start of an `ID_SERIAL` (with the `_`
    /// that separates them from what follows).
    pub fn serial_prefix(self) -> String {
        let mut s = replace_whitespace(&format!("{}x", self.fields()));
        s.pop();
        s
    }
}

/// udev's `replace_whitespace`: trimmed, each blank run one `_`.
pub fn replace_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

/// scsi_id's search order: (designator type, NAA type or any, code set 1 binary/2 ASCII).
const SEARCH: [(u8, Option<u8>, u8); 12] = [
    (3, Some(6), 1),
    (3, Some(6), 2),
    (3, Some(5), 1),
    (3, Some(5), 2),
    (3, None, 1),
    (3, None, 2),
    (2, None, 1),
    (2, None, 2),
    (1, None, 1),
    (1, None, 2),
    (0, None, 1),
    (0, None, 2),
];

/// `ID_SERIAL` and `ID_SERIAL_SHORT` for a disk with these VPD pages.
pub fn id_serial(
    page83: Option<&[u8]>,
    page80: Option<&[u8]>,
    inquiry: Inquiry<'_>,
) -> Option<(String, String)> {
    page83
        .and_then(|p| from_page83(p, inquiry))
        .or_else(|| page80.and_then(|p| from_page80(p, inquiry)))
        .map(|(full, short)| (replace_whitespace(&full), replace_whitespace(&short)))
}

fn from_page83(page: &[u8], inquiry: Inquiry<'_>) -> Option<(String, String)> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let end = (4 + usize::from(page[2]) * 256 + usize::from(page[3])).min(page.len());
    let mut descriptors = Vec::new();
    let mut at = 4;
    while at + 4 <= end {
        let len = usize::from(page[at + 3]);
        if at + 4 + len > end {
            break;
        }
        descriptors.push(&page[at..at + 4 + len]);
        at += 4 + len;
    }
    for (kind, naa, code_set) in SEARCH {
        for d in &descriptors {
            let body = &d[4..];
            if (d[1] >> 4) & 0x03 != 0 || d[1] & 0x0f != kind || d[0] & 0x0f != code_set {
                continue;
            }
            if naa.is_some_and(|n| body.first().map(|b| b >> 4) != Some(n)) {
                continue;
            }
            let id: String = if code_set == 1 {
                body.iter().map(|b| format!("{b:02x}")).collect()
            } else {
                String::from_utf8_lossy(body).into_owned()
            };
            let mut full = format!("{kind:x}");
            if kind == 0 {
                full.push_str(&inquiry.fields());
            }
            full.push_str(&id);
            return Some((full, id));
        }
    }
    None
}

fn from_page80(page: &[u8], inquiry: Inquiry<'_>) -> Option<(String, String)> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let end = (4 + usize::from(page[3])).min(page.len());
    let serial = String::from_utf8_lossy(&page[4..end]).into_owned();
    if serial.trim().is_empty() {
        return None;
    }
    Some((format!("S{}{serial}", inquiry.fields()), serial))
}

/// The udev database entry of a disk, as systemd-udevd writes it.
pub fn database_entry(
    name: &str,
    dev_t: (u32, u32),
    inquiry: Inquiry<'_>,
    serial: Option<&(String, String)>,
) -> String {
    let mut text = String::new();
    if let Some((full, _)) = serial {
        text.push_str(&format!("S:disk/by-id/scsi-{full}\n"));
    }
    text.push_str(&format!(
        "E:DEVNAME=/dev/{name}\nE:DEVTYPE=disk\nE:MAJOR={}\nE:MINOR={}\nE:SUBSYSTEM=block\n",
        dev_t.0, dev_t.1
    ));
    text.push_str(&format!(
        "E:ID_SCSI=1\nE:ID_VENDOR={}\nE:ID_MODEL={}\nE:ID_TYPE=disk\n",
        replace_whitespace(inquiry.vendor),
        replace_whitespace(inquiry.model)
    ));
    if let Some((full, short)) = serial {
        text.push_str(&format!(
            "E:ID_BUS=scsi\nE:ID_SERIAL={full}\nE:ID_SERIAL_SHORT={short}\n"
        ));
    }
    text.push_str("E:TAGS=:systemd:\n");
    text
}
