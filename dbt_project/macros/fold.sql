{#- Fold one name or address part into its match-key form, the same on DuckDB, Postgres and in
    Python (orchestration/identity/fold.py, whose TABLE this is; `python -m
    orchestration.identity.fold` prints it): letters with accents, ligatures, full-width forms and
    the letters Unicode does not decompose (ß, Ø, Ł, Æ, Œ, Þ, Đ) become lower-case ASCII, then
    everything but ASCII letters and digits is removed, then ASCII is lower-cased
    ('Müller', 'MULLER', 'Ｍüller' → 'muller'; 'Straße' → 'strasse'; '12 Oak Ave.' → '12oakave').
    Plain translate(), regexp_replace() (replace_all) and lower(): no extension needed on either
    engine, and no locale-dependent lower() of a non-ASCII letter.
    tests/unit/test_unicode_keys.py checks every character of the table against Python. -#}
{% macro fold_key(col) -%}
    {%- set fold_from = 'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĹĺĻļĽľĿŀŁłŃńŅņŇňŉŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƒƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻǾǿȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳḀḁḂḃḄḅḆḇḈḉḊḋḌḍḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉṊṋṌṍṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẚẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ' -%}
    {%- set fold_to = 'aaaaaaceeeeiiiidnoooooouuuuyaaaaaaceeeeiiiidnoooooouuuuyyaaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiijjkkllllllllllnnnnnnnoooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzsfoouuaaiioouuuuuuuuuuaaaaggkkoooojggnnaaooaaaaeeeeiiiioooorrrruuuusstthhaaeeooooooooyyaabbbbbbccddddddddddeeeeeeeeeeffgghhhhhhhhhhiiiikkkkkkllllllllmmmmmmnnnnnnnnoooooooopppprrrrrrrrssssssssssttttttttuuuuuuuuuuvvvvwwwwwwwwwwxxxxyyzzzzzzhtwyasaaaaaaaaaaaaaaaaaaaaaaaaeeeeeeeeeeeeeeeeiiiioooooooooooooooooooooooouuuuuuuuuuuuuuyyyyyyyy0123456789abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz' -%}
    {%- set fold_multi = {'ae': 'ÆæǢǣǼǽ', 'th': 'Þþ', 'ss': 'ßẞ', 'ij': 'Ĳĳ', 'oe': 'Œœ', 'dz': 'ǄǅǆǱǲǳ', 'lj': 'Ǉǈǉ', 'nj': 'Ǌǋǌ', 'ff': 'ﬀ', 'fi': 'ﬁ', 'fl': 'ﬂ', 'ffi': 'ﬃ', 'ffl': 'ﬄ', 'st': 'ﬅﬆ'} -%}
    {%- set ns = namespace(expr=col) -%}
    {%- for folded, chars in fold_multi.items() -%}
        {%- set ns.expr = replace_all(ns.expr, "'[" ~ chars ~ "]'", "'" ~ folded ~ "'") -%}
    {%- endfor -%}
    {#- A value of ASCII only has nothing to translate (the table and the ligatures are all
        other than ASCII), and most names and addresses are: translate() with this table costs
        tens of microseconds a value, the check a length comparison. Same result either way (the
        check is null for null, which takes the second branch). -#}
    case
        when {{ is_ascii(col) }}
            then lower({{ replace_all(col, "'[^A-Za-z0-9]'", "''") }})
        else lower({{ replace_all("translate(" ~ ns.expr ~ ", '" ~ fold_from ~ "', '" ~ fold_to ~ "')", "'[^A-Za-z0-9]'", "''") }})
    end
{%- endmacro %}

{#- One row per distinct non-null value of `column` in `relation`: the value and its fold_key
    (`value`, `folded`). A model joins it back on the value, so each value is folded once however
    many rows hold it. -#}
{% macro folded_values(relation, column) -%}
    select
        value,
        {{ fold_key('value') }} as folded
    from (
        select distinct {{ column }} as value
        from {{ relation }}
        where {{ column }} is not null
    ) as distinct_values
{%- endmacro %}
