//! psql's `\gset`: a query whose one row sets variables for the rest of the file.

use super::*;

impl Runner<'_> {
    /// Runs `query` and sets, from its one row, a variable named `prefix` plus each
    /// column's name (a NULL unsets it), as psql's `\gset` does.
    pub(super) async fn gset(
        &self,
        query: &str,
        prefix: &str,
        at: &Location,
        script: &mut Script,
    ) -> Result<(), CopyError> {
        use tokio_postgres::SimpleQueryMessage;
        let messages = self
            .client()
            .simple_query(query)
            .await
            .map_err(CopyError::Db)?;
        let rows: Vec<_> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        // psql's own words for these.
        let row = match rows.as_slice() {
            [row] => row,
            [] => return Err(CopyError::Script(at.error("\\gset: no rows returned"))),
            _ => {
                return Err(CopyError::Script(
                    at.error("\\gset: more than one row returned"),
                ));
            }
        };
        for (i, column) in row.columns().iter().enumerate() {
            let name = format!("{prefix}{}", column.name());
            script.set_variable(&name, row.get(i));
        }
        Ok(())
    }
}
