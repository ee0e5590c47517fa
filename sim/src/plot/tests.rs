use super::*;

/// The `points` attribute of every polyline, in document order.
fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
    svg.lines()
        .filter(|line| line.starts_with("<polyline"))
        .map(|line| {
            let start = line.find("points=\"").expect("a polyline has points") + "points=\"".len();
            let end = start + line[start..].find('"').expect("the attribute ends");
            line[start..end]
                .split_whitespace()
                .map(|pair| {
                    let (x, y) = pair.split_once(',').expect("x,y");
                    (x.parse().expect("a number"), y.parse().expect("a number"))
                })
                .collect()
        })
        .collect()
}

fn two_series_chart() -> Chart {
    let mut chart = Chart::new("Sync <collapse> & async", "writers", "writes per s");
    chart.x_log2 = true;
    chart.series.push(Series::new("sync", vec![(1.0, 60.0), (2.0, 90.0), (4.0, 110.0), (8.0, 130.0)]));
    let mut real = Series::new("real threads", vec![(1.0, 100.0), (2.0, 200.0), (4.0, f64::NAN), (8.0, 800.0)]);
    real.dashed = true;
    chart.series.push(real);
    chart
}

#[test]
fn the_svg_is_one_document_with_a_polyline_per_series() {
    let svg = two_series_chart().to_svg();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    assert!(svg.ends_with("</svg>\n"), "{svg}");
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("</svg>").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count(), "text elements are closed");
    assert_eq!(svg.matches('<').count(), svg.matches('>').count(), "every tag is closed: {svg}");
    let points = polyline_points(&svg);
    assert_eq!(points.len(), 2, "one polyline per series");
    assert_eq!(points[0].len(), 4);
    assert_eq!(points[1].len(), 3, "the point that is not a number is left out");
    assert_eq!(svg.matches("<circle").count(), 7, "a marker per drawn point");
    assert_eq!(svg.matches("stroke-dasharray").count(), 2, "the dashed series and its legend entry");
}

#[test]
fn labels_and_legend_are_present_and_escaped() {
    let svg = two_series_chart().to_svg();
    assert!(svg.contains(">Sync &lt;collapse&gt; &amp; async</text>"), "{svg}");
    assert!(svg.contains(">writers (log2 scale)</text>"), "{svg}");
    assert!(svg.contains(">writes per s</text>"), "{svg}");
    assert!(svg.contains(">sync</text>") && svg.contains(">real threads</text>"), "legend names: {svg}");
    for tick in ["1", "2", "4", "8"] {
        assert!(svg.contains(&format!("text-anchor=\"middle\">{tick}</text>")), "x tick {tick}: {svg}");
    }
    assert!(!svg.contains("<collapse>"), "raw markup in a label");
}

#[test]
fn points_map_to_the_plot_area_corners_and_between() {
    let mut chart = Chart::new("t", "x", "y");
    chart.series.push(Series::new("line", vec![(0.0, 0.0), (5.0, 5.0), (10.0, 10.0)]));
    let (left, top, width, height) = Chart::plot_area();
    // x from 0 to 10 and y from 0 to 10 are already nice ends (step 2).
    assert_eq!(chart.position(0.0, 0.0), Some((left, top + height)));
    assert_eq!(chart.position(10.0, 10.0), Some((left + width, top)));
    assert_eq!(chart.position(5.0, 5.0), Some((left + width / 2.0, top + height / 2.0)));
    let points = polyline_points(&chart.to_svg());
    let expected: Vec<(f64, f64)> = [(0.0, 0.0), (5.0, 5.0), (10.0, 10.0)]
        .iter()
        .map(|(x, y)| chart.position(*x, *y).expect("shown"))
        .map(|(x, y)| ((x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0))
        .collect();
    assert_eq!(points, vec![expected]);
    assert_eq!(points[0][0], (80.0, 364.0), "the origin is the plot area's bottom-left corner");
}

#[test]
fn a_log2_axis_spaces_powers_of_two_evenly() {
    let mut chart = Chart::new("t", "writers", "y");
    chart.x_log2 = true;
    chart.y_log2 = true;
    chart.series.push(Series::new("line", vec![(1.0, 1.0), (2.0, 4.0), (4.0, 16.0), (0.0, 3.0)]));
    let (left, top, width, height) = Chart::plot_area();
    let xs: Vec<f64> = [1.0, 2.0, 4.0].iter().map(|x| chart.position(*x, 1.0).expect("shown").0).collect();
    assert_eq!(xs, vec![left, left + width / 2.0, left + width]);
    assert_eq!(chart.position(4.0, 16.0), Some((left + width, top)));
    assert_eq!(chart.position(1.0, 1.0), Some((left, top + height)));
    assert_eq!(chart.position(0.0, 3.0), None, "zero has no place on a log axis");
    assert_eq!(polyline_points(&chart.to_svg())[0].len(), 3);
}

#[test]
fn tick_labels_and_steps_are_round() {
    assert_eq!(number_label(4.0), "4");
    assert_eq!(number_label(0.25), "0.25");
    assert_eq!(number_label(1.0 / 3.0), "0.3333");
    assert_eq!(number_label(0.0625), "0.0625");
    assert_eq!(nice_step(0.7), 1.0);
    assert_eq!(nice_step(1.2), 2.0);
    assert_eq!(nice_step(3.0), 5.0);
    assert_eq!(nice_step(600.0), 1000.0);
    let range = axis_range([3.0, 47.0].into_iter(), false, true);
    assert_eq!((range.low, range.high), (0.0, 50.0));
    assert_eq!(range.ticks(), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
}
