fn main() {
    println!("rruntime");
}
