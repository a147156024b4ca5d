// The sample newsroom: six articles and a weekly report, all invented for this example.
//
// Each piece has an `id` (also its tollgate `article_id`), the entitlement it `requires`, and its
// paragraphs. The first `free` paragraphs are the teaser everyone sees; the rest is the gated
// part, which the site only puts in the HTML when tollgate (or a token it signed) says so.

export const SITE_NAME = 'The Harbour Ledger';

/** @typedef {{ id: string, path: string, kind: 'article'|'report', requires: string, section: string,
 *   title: string, dek: string, author: string, published: string, free: number,
 *   paragraphs: string[] }} Piece */

/** @type {Piece[]} */
export const articles = [
  {
    id: 'budget-gap-explained',
    section: 'City Hall',
    title: 'The budget gap nobody voted for',
    dek: 'How a quiet change in pension accounting opened a 41-million hole in next year’s city budget.',
    author: 'Marta Okonjo',
    published: '2026-11-18',
    paragraphs: [
      'When the finance committee met on Tuesday, the headline number was already public: a shortfall of 41 million in a budget of just under 1.2 billion. What had not been explained, until the committee’s own actuary took the microphone, was where most of it came from.',
      'About two thirds of the gap is not new spending at all. It is the result of a revised discount rate for the municipal pension fund, adopted by the fund’s trustees in September, which raises the present value of promises the city has already made. No councillor voted on it, and none could have: the trustees are independent by statute.',
      'The remaining third is more familiar. Wage settlements for transit staff came in above the 2.5 percent the draft assumed, and the winter maintenance contract was renewed at a price that reflects last year’s unusually long freeze.',
      'Options on the table range from drawing down the stabilisation reserve, which would cover the gap once but leave nothing for next year, to a phased property-tax increase that the mayor has so far ruled out. A third path, stretching the pension contribution schedule over a longer period, is legal but would raise the total cost to taxpayers by an estimated 60 million over two decades.',
      'The committee meets again on 2 December. Our reading of the actuary’s tables suggests the reserve option is the likeliest outcome, with the harder conversation postponed to the spring.',
    ],
  },
  {
    id: 'port-automation-jobs',
    section: 'Economy',
    title: 'Cranes without cabins: what automation means for the port',
    dek: 'The new container terminal will run with a third of the crew. The union says the real number is worse.',
    author: 'Idris Halvorsen',
    published: '2026-11-17',
    paragraphs: [
      'The first of six remote-operated ship-to-shore cranes arrived at the east terminal last week, lifted off a heavy-lift vessel in pieces and bolted together over four days. From next summer, the people who move containers on and off ships will do it from a control room two kilometres inland.',
      'The port authority’s business case, which we obtained under a public records request, assumes the terminal will need 140 operational staff where a conventional terminal of the same size would need about 420. The authority says no current employee will be laid off; the difference will come from retirements and from not filling posts.',
      'The dockworkers’ union disputes the arithmetic. Its own analysis counts the lashing, checking and yard-driving roles that automated stacking cranes also remove, and arrives at a reduction closer to 75 percent across the port over ten years.',
      'Both sides agree on one point: the new jobs are different jobs. Remote crane operators train for months on simulators, and the maintenance crews for the automated yard need electrical and software skills that the port has historically bought in from contractors.',
      'Whether the region’s technical college can train enough of them is the question the business case does not answer. Its current programme graduates eleven industrial electricians a year.',
    ],
  },
  {
    id: 'rents-and-vacancies',
    section: 'Housing',
    title: 'Why rents rose in a year when vacancies did too',
    dek: 'More empty flats should mean cheaper ones. The data shows why that did not happen here.',
    author: 'Sanna Ferreira',
    published: '2026-11-15',
    paragraphs: [
      'On paper, the city’s rental market loosened this year: the vacancy rate climbed from 1.8 to 2.9 percent, the highest since 2019. Yet asking rents for new leases rose by 6.4 percent, well ahead of wages.',
      'The explanation lies in which flats are empty. Almost all of the new vacancies are in the newly completed towers along the river, where landlords would rather hold units empty for a few months than sign leases below the rent their lenders modelled. Older stock in the inner districts remains as tight as ever.',
      'Landlords of new buildings can afford to wait because their financing is long-term and their valuations depend on achieved rents, not on occupancy. A flat let at a discount lowers the value of the whole building; a flat left empty for a quarter does not.',
      'Tenant groups have asked the council to publish vacancy figures per building, which would make the pattern visible to renters. The council’s housing office says it does not collect the data at that level and would need a change to the registration bylaw to do so.',
      'For renters the practical advice is unglamorous: the new towers are negotiable late in the quarter, when managers are measured on occupancy, and almost never at the start of it.',
    ],
  },
  {
    id: 'grid-battery-bet',
    section: 'Energy',
    title: 'The utility’s 300-megawatt battery bet',
    dek: 'A storage plant on the old coal site could cut evening prices. It could also sit idle.',
    author: 'Tomasz Reyes',
    published: '2026-11-13',
    paragraphs: [
      'The regional utility will ask regulators next month to approve a 300-megawatt battery plant on the site of the former Northfield coal station, reusing the grid connection the coal units left behind. It would be the largest storage project in the state.',
      'The case for it rests on the evening peak. Solar output collapses between five and seven o’clock just as households switch on ovens and heat pumps, and the gas turbines that fill the gap set the price for everyone. A battery charged at midday could shave the most expensive hours off that curve.',
      'The risk is that it arrives into a market that has already changed. Three private storage projects are in the connection queue, and if they are built first the price spread the utility’s model depends on will narrow. The regulator’s staff noted in a preliminary filing that the project’s returns fall by half if the evening spread drops below 40 per megawatt-hour.',
      'Ratepayers would carry that risk, because the battery would enter the regulated asset base. Consumer advocates want the utility to sign a long-term tolling contract with a third party instead, leaving the market risk with an investor.',
      'The hearing is scheduled for February. Expect the argument to be less about whether storage is needed, which nobody disputes, than about who should own it.',
    ],
  },
  {
    id: 'ward-boundaries',
    section: 'Politics',
    title: 'New ward lines, old arguments',
    dek: 'The boundary commission’s draft map would shift power towards the fast-growing north.',
    author: 'Marta Okonjo',
    published: '2026-11-11',
    paragraphs: [
      'The boundary commission published its draft map on Monday, the first redrawing of the city’s wards in twelve years. Population growth in the northern suburbs means the north gains two councillors and the old harbour districts lose one.',
      'The commission was bound by a rule that no ward may differ from the average by more than ten percent. Under the current map, the largest northern ward has 38 percent more residents than the smallest harbour ward, which in practice makes a harbour vote worth considerably more.',
      'Critics say the draft splits the Eastgate neighbourhood between three wards, diluting a community that has organised around flood defences for a decade. The commission’s response is that keeping Eastgate whole would have pushed a neighbouring ward outside the tolerance.',
      'Public consultation runs until 15 January, and the commission has redrawn drafts substantially in the past: in 2014 it reversed two of its proposed splits after hearings. A detailed, street-by-street comparison of the old and new maps is available in our weekly report.',
      'Whatever the final lines, the next council will have a northern majority for the first time, and the budget priorities that come with it.',
    ],
  },
  {
    id: 'water-meters',
    section: 'Environment',
    title: 'Smart water meters find the leaks, and the bills',
    dek: 'A pilot in two districts cut losses by a fifth. It also surprised some households.',
    author: 'Idris Halvorsen',
    published: '2026-11-09',
    paragraphs: [
      'For eighteen months, 9,000 homes in Millbrook and Saltmarsh have had water meters that report hourly instead of twice a year. The water board published its evaluation of the pilot this week, and the headline figure is striking: water lost between the treatment plant and the tap fell by 21 percent.',
      'Most of the saving came from the network rather than from households. Hourly readings made it possible to compare what entered each street with what the meters on it recorded, and night-time differences pointed crews to leaking mains that had gone unnoticed for years.',
      'Households found leaks too. About one home in twenty received an alert about continuous flow overnight, usually a running toilet cistern, occasionally a burst pipe under a floor. Those homes saw their bills drop once the fault was fixed, but some had been paying for the leak for years without knowing it.',
      'The less welcome surprise was accuracy. The old mechanical meters under-recorded slow flows, and about a third of pilot households now pay slightly more for the same use. The board has offered a one-year cap on increases while the rollout continues.',
      'Rolling the meters out city-wide would cost an estimated 38 million over five years. The board’s evaluation argues that the reduction in leakage alone repays that within nine years, before counting the deferred cost of a new reservoir.',
    ],
  },
];

/** The weekly report: subscribers whose plan includes `reports` only. */
export const weeklyReport = {
  id: 'weekly-report-2026-47',
  section: 'Weekly report',
  title: 'The Weekly Ledger: the numbers that moved this week',
  dek: 'Our data desk’s digest for subscribers: budget, housing, energy and the ward map, in figures.',
  author: 'The Harbour Ledger data desk',
  published: '2026-11-21',
  paragraphs: [
    'Every Friday the data desk collects the figures behind the week’s reporting, with the sources and the caveats that do not fit in an article. This week: the budget gap, rents, the battery plant and the new ward map.',
    'Budget: of the 41-million shortfall, 27.3 million follows from the pension fund’s lower discount rate (3.9 percent, down from 4.4), 8.1 million from transit wage settlements and 5.6 million from the winter maintenance contract. The stabilisation reserve stands at 52 million.',
    'Housing: median asking rent for a new two-room lease rose to 1,420 a month, up 6.4 percent on the year. Vacancy in buildings completed since 2024 is 7.2 percent; in pre-2000 stock it is 1.1 percent.',
    'Energy: the evening price spread the battery needs (the gap between midday and the 17:00 to 19:00 window) averaged 58 per megawatt-hour this quarter, against 71 a year ago.',
    'Ward map: under the draft, the largest ward would exceed the average by 8.7 percent and the smallest fall short by 9.2 percent, both inside the ten-percent tolerance. Eastgate’s 11,400 residents would be split 5,100, 4,000 and 2,300 between three wards.',
  ],
};

for (const piece of articles) {
  piece.kind = 'article';
  piece.requires = 'articles';
  piece.free = 1;
  piece.path = `/articles/${piece.id}`;
}
weeklyReport.kind = 'report';
weeklyReport.requires = 'reports';
weeklyReport.free = 1;
weeklyReport.path = '/reports/weekly';

/** The piece with this article id, or undefined. */
export function findArticle(id) {
  return articles.find((a) => a.id === id);
}

/** Every path that may hold an article token cookie: one per piece. */
export function allPiecePaths() {
  return [...articles.map((a) => a.path), weeklyReport.path];
}
