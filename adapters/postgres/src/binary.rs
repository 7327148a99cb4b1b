//! Binary bytes as PostgreSQL large objects: written chunk by chunk inside the
//! resource's transaction (so an aborted upload leaves nothing behind) and read
//! back chunk by chunk, so no request holds several copies of a large body.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer, Oid};
use sha2::{Digest, Sha256};

use crate::schema::binary_content;
use crate::tx::Tx;
use crate::StoreError;

/// Size of the pieces moved between the server and PostgreSQL.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// What is known about stored bytes without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMeta {
    pub content_type: String,
    pub size: i64,
    pub sha256: Vec<u8>,
}

/// Where the bytes of one Binary version are, and what is known of them:
/// a read decides and audits in its snapshot, then the bytes follow a chunk
/// at a time ([`crate::PgStore::binary_chunk`]), each on a connection taken
/// for that chunk only. A version's large object never changes once its
/// transaction committed, so reading it after the snapshot reads the same
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryLocation {
    oid: u32,
    pub meta: BinaryMeta,
}

impl Tx<'_> {
    /// Where the bytes of `Binary/{id}` version `version_id` are; `None`
    /// when the version has none recorded.
    pub fn binary_location(
        &mut self,
        id: &str,
        version_id: i64,
    ) -> Result<Option<BinaryLocation>, StoreError> {
        Ok(locate(self.conn, id, version_id)?.map(|(oid, meta)| BinaryLocation { oid, meta }))
    }

    /// Streams `chunks` into a new large object and records it as the bytes of
    /// `Binary/{id}` version `version_id`. Fails with `TooLarge` as soon as more
    /// than `limit` bytes arrived; the transaction then rolls everything back.
    pub fn write_binary<I>(
        &mut self,
        id: &str,
        version_id: i64,
        content_type: &str,
        chunks: I,
        limit: u64,
    ) -> Result<BinaryMeta, StoreError>
    where
        I: IntoIterator<Item = Result<Vec<u8>, String>>,
    {
        let oid: u32 = diesel::select(sql::<Oid>("lo_create(0)")).get_result(self.conn)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        for chunk in chunks {
            let chunk = chunk.map_err(StoreError::UploadAborted)?;
            if chunk.is_empty() {
                continue;
            }
            size += chunk.len() as u64;
            if size > limit {
                return Err(StoreError::TooLarge { limit });
            }
            hasher.update(&chunk);
            diesel::sql_query("SELECT lo_put($1, $2, $3)")
                .bind::<Oid, _>(oid)
                .bind::<BigInt, _>((size - chunk.len() as u64) as i64)
                .bind::<Binary, _>(&chunk)
                .execute(self.conn)?;
        }
        let meta = BinaryMeta {
            content_type: content_type.to_string(),
            size: size as i64,
            sha256: hasher.finalize().to_vec(),
        };
        diesel::insert_into(binary_content::table)
            .values((
                binary_content::id.eq(id),
                binary_content::version_id.eq(version_id),
                binary_content::content_type.eq(&meta.content_type),
                binary_content::size.eq(meta.size),
                binary_content::sha256.eq(&meta.sha256),
                binary_content::data.eq(oid),
            ))
            .execute(self.conn)?;
        Ok(meta)
    }
}

/// The large object and metadata of one Binary version.
fn locate(
    conn: &mut PgConnection,
    id: &str,
    version_id: i64,
) -> Result<Option<(u32, BinaryMeta)>, StoreError> {
    let row = binary_content::table
        .filter(binary_content::id.eq(id))
        .filter(binary_content::version_id.eq(version_id))
        .select((
            binary_content::content_type,
            binary_content::size,
            binary_content::sha256,
            binary_content::data,
        ))
        .first::<(String, i64, Vec<u8>, u32)>(conn)
        .optional()?;
    Ok(row.map(|(content_type, size, sha256, oid)| {
        (
            oid,
            BinaryMeta {
                content_type,
                size,
                sha256,
            },
        )
    }))
}

/// The chunk of large object `oid` at `offset`; `None` past `size`.
fn chunk_at(
    conn: &mut PgConnection,
    oid: u32,
    offset: i64,
    size: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    if offset >= size {
        return Ok(None);
    }
    let len = (size - offset).min(CHUNK_SIZE as i64);
    let chunk: Vec<u8> = diesel::select(
        sql::<Binary>("lo_get(")
            .bind::<Oid, _>(oid)
            .sql(", ")
            .bind::<BigInt, _>(offset)
            .sql(", ")
            .bind::<Integer, _>(len as i32)
            .sql(")"),
    )
    .get_result(conn)?;
    if chunk.is_empty() {
        return Err(StoreError::Internal(format!(
            "large object {oid} ended at {offset} of {size} bytes"
        )));
    }
    Ok(Some(chunk))
}

impl crate::PgStore {
    /// Every byte at `at`, read a chunk at a time on one connection, for
    /// answers that must hold them (a Binary in base64 in a Bundle).
    pub fn binary_bytes(&self, at: &BinaryLocation) -> Result<Vec<u8>, StoreError> {
        let conn = &mut *self.conn()?;
        let mut all = Vec::with_capacity(usize::try_from(at.meta.size).unwrap_or(0));
        while let Some(chunk) = chunk_at(conn, at.oid, all.len() as i64, at.meta.size)? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The chunk of the bytes at `at` that starts at `offset` (at most
    /// [`CHUNK_SIZE`] bytes); `None` past the end.
    pub fn binary_chunk(
        &self,
        at: &BinaryLocation,
        offset: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let offset = i64::try_from(offset)
            .map_err(|_| StoreError::Internal(format!("offset {offset} beyond i64")))?;
        chunk_at(&mut *self.conn()?, at.oid, offset, at.meta.size)
    }
}
