//! A report as CSV: the JSON rows, column by column, so both carry the same figures. RFC 4180
//! quoting (the `csv` crate), CRLF line ends, and text that a spreadsheet would run as a formula
//! (`=`, `+`, `-`, `@`, and tab or carriage return in front) is prefixed with `'`.

use serde::Serialize;
use serde_json::Value;

/// Why rows could not be written.
#[derive(Debug, thiserror::Error)]
#[error("a report could not be written as CSV: {0}")]
pub struct CsvError(String);

/// What a cell shows: numbers as JSON writes them, text as it is (escaped when it could run as
/// a formula), nothing for `null`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => {
            if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{text}")
            } else {
                text.clone()
            }
        }
        Some(other) => other.to_string(),
    }
}

/// `rows` as CSV with a header row of `columns`; each row's fields are looked up by column name.
pub fn to_csv<R: Serialize>(columns: &[&str], rows: &[R]) -> Result<String, CsvError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer
        .write_record(columns)
        .map_err(|e| CsvError(e.to_string()))?;
    for row in rows {
        let value = serde_json::to_value(row).map_err(|e| CsvError(e.to_string()))?;
        writer
            .write_record(columns.iter().map(|c| cell(value.get(*c))))
            .map_err(|e| CsvError(e.to_string()))?;
    }
    let bytes = writer.into_inner().map_err(|e| CsvError(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CsvError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_are_quoted_as_rfc_4180_says_and_formulas_are_defused() {
        let rows = [
            json!({"plan_id": "=HYPERLINK(\"x\")", "currency": "eur", "gross": 1200, "rate": 0.25}),
            json!({"plan_id": "a,b", "currency": "-1", "gross": -5, "rate": null}),
            json!({"plan_id": "@sum", "currency": "line\nbreak", "gross": 0, "rate": 1.0}),
        ];
        let csv = to_csv(&["plan_id", "currency", "gross", "rate"], &rows).unwrap();
        assert_eq!(
            csv,
            "plan_id,currency,gross,rate\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",eur,1200,0.25\r\n\
             \"a,b\",'-1,-5,\r\n\
             '@sum,\"line\nbreak\",0,1.0\r\n"
        );
    }
}
