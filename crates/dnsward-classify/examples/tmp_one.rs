use dnsward_classify::DgaModel;
fn main() {
    let model = DgaModel::embedded().unwrap().with_cache_capacity(1);
    let q = std::env::args().nth(1).unwrap_or("abc.org".into());
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(2000);
    for _ in 0..n {
        model.clear_cache();
        std::hint::black_box(model.judge(&q));
    }
}
