//! Queries that try to keep a SPARQL endpoint busy, shared by the tests and the benchmark.

/// Three `VALUES` blocks of 2,000 numbers each, joined, under a `FILTER` that never holds: all the
/// work is in memory (8·10⁹ combinations), none of it reads the store.
pub fn in_memory_cross_product() -> String {
    let values = |v: &str| {
        let numbers: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        format!("VALUES ?{v} {{ {} }}", numbers.join(" "))
    };
    format!(
        "SELECT (COUNT(*) AS ?n) WHERE {{ {} {} {} FILTER(?a + ?b + ?c < 0) }}",
        values("a"),
        values("b"),
        values("c")
    )
}
