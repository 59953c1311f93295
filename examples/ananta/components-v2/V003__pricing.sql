-- Distributor prices: one row per component, distributor, currency and price
-- break. A price is current until valid_to is set, when a newer quote replaces it.
CREATE TABLE component_price (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    component_id bigint      NOT NULL REFERENCES component (id) ON DELETE CASCADE,
    distributor  text        NOT NULL,
    currency     char(3)     NOT NULL DEFAULT 'USD',
    break_qty    integer     NOT NULL DEFAULT 1 CHECK (break_qty > 0),
    unit_price   numeric(12, 5) NOT NULL CHECK (unit_price >= 0),
    valid_from   timestamptz NOT NULL DEFAULT now(),
    valid_to     timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- At most one current price per component, distributor, currency and break;
-- the partial index also serves the lookups of current prices.
CREATE UNIQUE INDEX component_price_current_uq
    ON component_price (component_id, distributor, currency, break_qty)
    WHERE valid_to IS NULL;

-- The unit price of a component for an order of qty pieces: the lowest current
-- price among the breaks the quantity reaches, NULL when nobody quotes it.
CREATE FUNCTION component_unit_price(p_component_id bigint, qty integer, p_currency char(3) DEFAULT 'USD')
RETURNS numeric
LANGUAGE sql STABLE AS $fn$
    SELECT min(unit_price)
      FROM component_price
     WHERE component_id = p_component_id
       AND currency = p_currency
       AND valid_to IS NULL
       AND break_qty <= qty;
$fn$;

-- The current list price (one piece) and price range of every component.
CREATE VIEW component_current_price AS
SELECT c.id AS component_id,
       c.manufacturer,
       c.mpn,
       component_unit_price(c.id, 1) AS unit_price_usd,
       min(p.unit_price) FILTER (WHERE p.currency = 'USD') AS best_break_price_usd,
       count(DISTINCT p.distributor) AS distributors
  FROM component c
  LEFT JOIN component_price p ON p.component_id = c.id AND p.valid_to IS NULL
 GROUP BY c.id, c.manufacturer, c.mpn;

INSERT INTO component_price (component_id, distributor, break_qty, unit_price)
SELECT c.id, v.distributor, v.break_qty, v.unit_price
  FROM (VALUES
        ('Texas Instruments',  'LM358', 'Digi-Key',   1,    0.45000),
        ('Texas Instruments',  'LM358', 'Digi-Key',   100,  0.21000),
        ('Texas Instruments',  'LM358', 'Mouser',     1,    0.48000),
        ('STMicroelectronics', 'NE555', 'Digi-Key',   1,    0.39000),
        ('STMicroelectronics', 'NE555', 'Mouser',     1000, 0.11200)
       ) AS v (manufacturer, mpn, distributor, break_qty, unit_price)
  JOIN component c USING (manufacturer, mpn);
