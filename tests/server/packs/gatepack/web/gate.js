console.log("gatepack");
