//! The column tables of `show maps`, `show paths` and their `format` variants.
//!
//! multipathd pads every field to its column's width (the widest value or title), so a
//! column starts where its title starts in the header line. Titles can contain spaces
//! (`host WWNN`, `vend/prod/rev`) and values too (`i/o pending`, the `next_check` bar), so we
//! locate titles against the list multipathd prints rather than splitting on whitespace.

use super::{ParseError, is_empty_listing};

const SOURCE: &str = "table";

/// Every column title of multipath-tools' map and path wildcards.
const TITLES: &[&str] = &[
    "name",
    "uuid",
    "sysfs",
    "failback",
    "queueing",
    "paths",
    "write_prot",
    "dm-st",
    "size",
    "features",
    "failures",
    "hwhandler",
    "action",
    "path_faults",
    "switch_grp",
    "map_loads",
    "total_q_time",
    "q_timeouts",
    "vend/prod/rev",
    "vend",
    "prod",
    "rev",
    "foreign",
    "vpd page data",
    "max_sectors_kb",
    "hcil",
    "dev",
    "dev_t",
    "dm_st",
    "dev_st",
    "chk_st",
    "checker",
    "next_check",
    "pri",
    "serial",
    "marginal_st",
    "multipath",
    "host WWNN",
    "target WWNN",
    "host WWPN",
    "target WWPN",
    "host adapter",
    "protocol",
    "init_st",
    "LUN hex",
    "TPG",
];

/// A parsed table: column titles and rows of trimmed cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The cell of `row` under the column titled `title`.
    pub fn cell(&self, row: usize, title: &str) -> Option<&str> {
        let col = self.columns.iter().position(|c| c == title)?;
        self.rows.get(row)?.get(col).map(String::as_str)
    }

    /// Every cell of the column titled `title`, in row order.
    pub fn column(&self, title: &str) -> Vec<&str> {
        match self.columns.iter().position(|c| c == title) {
            Some(col) => self
                .rows
                .iter()
                .filter_map(|r| r.get(col).map(String::as_str))
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Parses a padded table with its header line. `ok` (an empty listing) is an empty table.
pub fn parse_table(text: &str) -> Result<Table, ParseError> {
    if is_empty_listing(text) {
        return Ok(Table::default());
    }
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Table::default());
    };
    let starts = column_starts(header);
    if starts.is_empty() {
        return Err(ParseError::at_line(SOURCE, 1, "no column titles", header));
    }
    let columns = starts.iter().map(|(_, title)| title.to_string()).collect();
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let mut row = Vec::with_capacity(starts.len());
        for (i, (start, _)) in starts.iter().enumerate() {
            let end = starts
                .get(i + 1)
                .map_or(line.len(), |(next, _)| *next)
                .min(line.len());
            let cell = line.get((*start).min(end)..end).ok_or_else(|| {
                ParseError::at_line(
                    SOURCE,
                    index + 2,
                    "row does not align with the header",
                    line,
                )
            })?;
            row.push(cell.trim().to_string());
        }
        rows.push(row);
    }
    Ok(Table { columns, rows })
}

/// Byte offset and title of each column in the header.
fn column_starts(header: &str) -> Vec<(usize, &str)> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < header.len() {
        let rest = &header[at..];
        let skipped = rest.len() - rest.trim_start().len();
        at += skipped;
        let rest = &header[at..];
        if rest.is_empty() {
            break;
        }
        // The longest known title that ends at a word boundary wins (`dev_t` over `dev`).
        let title = TITLES
            .iter()
            .filter(|t| {
                rest.starts_with(**t)
                    && rest[t.len()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_whitespace)
            })
            .max_by_key(|t| t.len())
            .copied()
            .unwrap_or_else(|| rest.split_whitespace().next().unwrap_or(rest));
        starts.push((at, title));
        at += title.len();
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_maps_with_trailing_padding() {
        let t = parse_table(
            "name   sysfs uuid                             \nmpatha dm-6  368caaaaaaaaae2069fb9e3e1000001c4\n",
        )
        .unwrap();
        assert_eq!(t.columns, ["name", "sysfs", "uuid"]);
        assert_eq!(t.cell(0, "uuid"), Some("368caaaaaaaaae2069fb9e3e1000001c4"));
        assert_eq!(t.column("name"), ["mpatha"]);
    }

    #[test]
    fn show_paths_with_spaces_inside_values_and_titles() {
        let t = parse_table(
            "hcil    dev dev_t pri dm_st  chk_st      dev_st  next_check     host WWNN\n\
             1:0:0:1 sdb 8:16  50  active i/o pending running XXXXXXXX.. 4/5 [undef]  \n\
             1:0:1:1 sdd 8:48  10  failed faulty      running orphan         [undef]  \n",
        )
        .unwrap();
        assert_eq!(t.columns.last().map(String::as_str), Some("host WWNN"));
        assert_eq!(t.cell(0, "chk_st"), Some("i/o pending"));
        assert_eq!(t.cell(0, "next_check"), Some("XXXXXXXX.. 4/5"));
        assert_eq!(t.cell(1, "dev_t"), Some("8:48"));
        assert_eq!(t.column("dm_st"), ["active", "failed"]);
    }

    #[test]
    fn empty_listing() {
        assert_eq!(parse_table("ok\n").unwrap(), Table::default());
    }
}
