//! The database test servers themselves (tests/db_server): each starts once for this test
//! binary, accepts the login the job files use, and comes back after a kill with its data.
//! The database sources and outputs have their own tests beside this.

mod db_server;

use db_server::DbServer;

fn round_trip(db: &DbServer, create: &str) {
    db.sql(create);
    db.sql("INSERT INTO harness_check VALUES (1, 'ä''\"; --')");
    db.kill();
    assert!(
        db.try_sql("SELECT 1").is_err(),
        "the server answers after a kill"
    );
    db.restart();
    assert_eq!(
        db.sql("SELECT id, name FROM harness_check"),
        "1\tä'\"; --\n"
    );
    db.sql("DROP TABLE harness_check");
}

#[test]
fn postgres_starts_once_and_survives_a_kill() {
    let Some(db) = db_server::postgres() else {
        return;
    };
    assert!(db.ca().exists());
    assert!(db.url().starts_with("postgres://ferry:secret@127.0.0.1:"));
    round_trip(
        db,
        "CREATE TABLE harness_check (id int PRIMARY KEY, name text)",
    );
}

#[test]
fn mariadb_starts_once_and_survives_a_kill() {
    let Some(db) = db_server::mariadb() else {
        return;
    };
    assert!(db.ca().exists());
    round_trip(
        db,
        "CREATE TABLE harness_check (id int PRIMARY KEY, name varchar(40)) CHARACTER SET utf8mb4",
    );
}
