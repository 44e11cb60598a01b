//! Rebuilds the host when a migration is added, removed or renamed: `sqlx::migrate!` embeds the
//! migrations folders at compile time, and cargo tracks only the files it included.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
