//! What a command says, line by line: on stdout, or on stderr (a problem). The commands
//! the web console runs too (`retry`, `approve`, `reject`, `trigger`) say their lines
//! through a `&mut dyn FnMut(Say)`: [`print`] for the terminal; the console shows them on
//! its page.

/// One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    Out(String),
    Err(String),
}

/// Prints a line where the terminal expects it.
pub fn print(line: Say) {
    match line {
        Say::Out(l) => println!("{l}"),
        Say::Err(l) => eprintln!("{l}"),
    }
}
